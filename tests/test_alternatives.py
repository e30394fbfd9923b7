"""The real alternative paths of issue 29 (docs/notes/alternatives.md) end to end through an
experiment file: each switch is a factor, every run finishes, and the rows carry the switch.
The per-mechanism tests are in test_seqpacket.py, test_epoll.py, test_batch.py and
test_zerocopy_rfs.py; this one checks they all work from the user's entry point."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.xdist_group("alternatives")

#: the epoll stages are measured (harness --micro-epoll) only in this profile's stage file
_PROFILE = "amd-epyc-v1300-2026-12-06"


def _run(tmp_path, body: str) -> pd.DataFrame:
    from lbsim.runner import run_experiment

    f = tmp_path / "alt.toml"
    f.write_text(f'name = "alt"\n[base]\ncosts = "{_PROFILE}"\nmessages = 300\n' + body)
    df = run_experiment(f, jobs=1, out=tmp_path / "out", quiet=True)
    return df[df["metric"].isin(["throughput_bytes_per_s", "latency_us_p50"])]


def test_every_alternative_runs_from_an_experiment_file(tmp_path):
    df = _run(tmp_path, 'workload = "stream"\nmsg_bytes = 1024\nplacement = "cross"\n'
                        '[[zip]]\ntransport = ["unix_dgram", "unix_seqpacket", "udp", "tcp", "udp", "tcp"]\n'
                        'receiver = ["blocking", "blocking", "epoll", "epoll", "blocking", "blocking"]\n'
                        'batch = [1, 1, 1, 1, 16, 4]\n'
                        'zerocopy = [false, false, false, false, false, false]\n')
    assert len(df) == 12 and set(df["status"]) == {"ok"}, df[["transport", "status"]]
    assert set(zip(df["transport"], df["receiver"], df["batch"])) == {
        ("unix_dgram", "blocking", 1), ("unix_seqpacket", "blocking", 1), ("udp", "epoll", 1),
        ("tcp", "epoll", 1), ("udp", "blocking", 16), ("tcp", "blocking", 4)}
    assert (df[df["metric"] == "throughput_bytes_per_s"]["value"] > 0).all()


def test_zerocopy_and_rfs_from_an_experiment_file(tmp_path):
    df = _run(tmp_path, 'workload = "pingpong"\nmsg_bytes = 64\nplacement = "cross"\ntransport = "udp"\n'
                        'rps_flow_cnt = 4096\n'
                        '[factors]\nzerocopy = [false, true]\nrps_sock_flow_entries = [0, 32768]\n')
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    p50 = df[df["metric"] == "latency_us_p50"].set_index(["zerocopy", "rps_sock_flow_entries"])["value"]
    # on lo MSG_ZEROCOPY only adds work (a deferred copy and a reaping syscall): never faster
    assert p50[(True, 0)] > p50[(False, 0)]
