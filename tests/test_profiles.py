"""Cost profiles: which one ``auto`` picks for a host, the shipped ones, cost-file schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from lbsim import profiles
from lbsim.costs import SCHEMA, CostFileError, cost_model_from_dict, load_costs
from lbsim.hostid import HostId, kernel_build

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"xeon-v1272-2026-12-06", "xeon-v769-2026-11-25", "amd-epyc-v1272-2026-12-06",
           "amd-epyc-v1252-2026-12-04", "amd-epyc-v1300-2026-12-06"}
AMD_HERE = HostId("AuthenticAMD", 25, 17, 1, "AMD EPYC", "6.18.44-fc-v1300", "vm")
#: an AMD CPU model no profile was measured on, with a kernel build between two that were
AMD_ELSE = HostId("AuthenticAMD", 23, 49, 0, "AMD EPYC", "6.18.44-fc-v1280", "vm")
NOTICE = ("this host (AuthenticAMD 23/49/0, 6.18.44-fc-v1280) has no profile of its own; `lbsim calibrate` "
          "measures it and makes one")


@pytest.fixture(autouse=True)
def _own_profile_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)


def default_dict() -> dict:
    return json.loads(resources.files("lbsim").joinpath("data/costs-default.json").read_text())


def test_user_dir_follows_xdg(tmp_path):
    assert profiles.user_dir() == tmp_path / "xdg" / "lbsim" / "profiles"


def test_auto_picks_the_users_own_calibration_of_this_host_newest_first():
    older = profiles.install_user_profile(default_dict(), name="mine-old", host=AMD_HERE, date="2026-12-07")
    newer = profiles.install_user_profile(default_dict(), name="mine-new", host=AMD_HERE, date="2026-12-08")
    # another stepping, and another kernel, of the same CPU are not this host
    profiles.install_user_profile(default_dict(), name="other-stepping", date="2026-12-09",
                                  host=HostId("AuthenticAMD", 25, 17, 2, "AMD EPYC", "6.18.44-fc-v1300"))
    profiles.install_user_profile(default_dict(), name="other-kernel", date="2026-12-09",
                                  host=HostId("AuthenticAMD", 25, 17, 1, "AMD EPYC", "6.18.44-fc-v1301"))
    model, choice = profiles.resolve("auto", host=AMD_HERE)
    assert (choice.name, choice.path, choice.notice) == ("mine-new", str(newer), None)
    assert "own calibration" in choice.reason
    assert model.hash == load_costs("default").hash
    assert older.exists() and {"mine-old", "mine-new"} <= set(profiles.profile_names())


def _fake_shipped(folder: Path, name: str, host: HostId, date: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = profiles.make_profile(default_dict(), name=name, host=host, date=date, data_sha256=None,
                                 heldout=None, data=None)
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_auto_falls_back_to_the_shipped_profile_of_the_same_cpu_model_with_a_kernel_notice(tmp_path,
                                                                                             monkeypatch):
    shipped = tmp_path / "shipped"
    _fake_shipped(shipped, "amd-19-11-v1272", HostId("AuthenticAMD", 25, 17, 0, "AMD EPYC", "6.18.44-fc-v1272"),
                  "2026-12-06")
    _fake_shipped(shipped, "amd-19-01-v1300", HostId("AuthenticAMD", 25, 1, 1, "AMD EPYC", "6.18.44-fc-v1300"),
                  "2026-12-06")
    monkeypatch.setattr(profiles, "shipped_dir", lambda: shipped)
    _, choice = profiles.resolve("auto", host=AMD_HERE)
    assert choice.name == "amd-19-11-v1272"  # same family and model (stepping aside), not the same kernel
    assert "same CPU vendor, family and model" in choice.reason
    assert choice.notice and "6.18.44-fc-v1272" in choice.notice and "\n" not in choice.notice
    # the same kernel as well: no notice
    _, choice = profiles.resolve("auto", host=HostId("AuthenticAMD", 25, 17, 1, "AMD EPYC", "6.18.44-fc-v1272"))
    assert choice.name == "amd-19-11-v1272" and choice.notice is None


def test_auto_falls_back_to_the_nearest_shipped_profile_with_a_one_line_notice():
    _, choice = profiles.resolve("auto", host=AMD_ELSE)
    assert choice.name == "amd-epyc-v1272-2026-12-06"  # same vendor, kernel build 1272 nearest to 1280
    assert choice.notice.startswith(NOTICE) and "\n" not in choice.notice
    assert choice.how == "auto: nearest; no profile of this host"
    intel = HostId("GenuineIntel", 6, 207, 2, "Intel(R) Xeon(R) Processor", "6.18.44-fc-v800")
    assert profiles.resolve("auto", host=intel)[1].name == "xeon-v769-2026-11-25"
    intel = HostId("GenuineIntel", 6, 207, 2, "Intel(R) Xeon(R) Processor", "6.18.44-fc-v1262")
    assert profiles.resolve("auto", host=intel)[1].name == "xeon-v1272-2026-12-06"  # a tie: the newest
    other = HostId("CentaurHauls", 7, 59, 0, "VIA", "6.18.44-fc-v1250")
    _, choice = profiles.resolve("auto", host=other)
    assert "-v1252-" in choice.name and "no profile of this CPU vendor" in choice.reason


def test_lbsim_costs_replaces_what_auto_resolves_to(tmp_path, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "xeon-v769-2026-11-25")
    _, choice = profiles.resolve("auto", host=AMD_HERE)
    assert choice.name == "xeon-v769-2026-11-25" and choice.notice is None and "LBSIM_COSTS" in choice.reason
    assert load_costs("auto").hash == load_costs("xeon-v769-2026-11-25").hash
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(default_dict()))
    monkeypatch.setenv(profiles.ENV_VAR, str(path))
    model, choice = profiles.resolve("auto", host=AMD_HERE)
    assert choice.path == str(path) and model.hash == load_costs("default").hash
    monkeypatch.setenv(profiles.ENV_VAR, "default")
    assert profiles.resolve("auto", host=AMD_HERE)[1].name == profiles.DEFAULT_PROFILE


def test_an_unknown_name_is_one_line_listing_the_names():
    for call in (lambda: profiles.resolve("no-such-profile"), lambda: load_costs("no-such-profile")):
        with pytest.raises(CostFileError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "no-such-profile" in msg
        assert all(name in msg for name in SHIPPED)
    with pytest.raises(CostFileError, match="cannot read cost file"):
        load_costs("/nonexistent.json")  # a path stays a path


def test_a_file_without_schema_is_migrated_and_a_newer_schema_is_refused():
    old = default_dict()
    assert "schema" not in old
    migrated = cost_model_from_dict(old, "old.json")
    assert migrated.hash == load_costs("default").hash and "profile" not in migrated.provenance
    assert cost_model_from_dict({**old, "schema": SCHEMA}, "new.json").hash == migrated.hash
    for bad in (SCHEMA + 1, 0, "2", True):
        with pytest.raises(CostFileError) as e:
            cost_model_from_dict({**old, "schema": bad}, "future.json")
        assert "lbsim calibrate" in str(e.value) and "\n" not in str(e.value)


def test_an_old_file_that_cannot_be_migrated_is_refused_with_how_to_recalibrate():
    old = default_dict()
    stages = dict(old["stages"])
    stages.pop("tcp_v4_rcv")
    stages["tcp_v4_do_rcv_old"] = {"fixed_ns": 100.0}
    for bad in ({**old, "stages": {k: v for k, v in stages.items() if k != "tcp_v4_do_rcv_old"}},
                {**old, "stages": stages}):
        with pytest.raises(CostFileError) as e:
            cost_model_from_dict(bad, "old.json")
        msg = str(e.value)
        assert msg.startswith("old.json: ") and "older lbsim" in msg and "lbsim calibrate" in msg and "\n" not in msg
    # a current file with the same fault is just refused: it is not an old one
    with pytest.raises(CostFileError) as e:
        cost_model_from_dict({**old, "schema": SCHEMA, "stages": stages}, "new.json")
    assert "older lbsim" not in str(e.value)


def test_default_is_the_xeon_v1272_profile_with_exactly_the_default_numbers():
    default = load_costs("default")
    assert load_costs(profiles.DEFAULT_PROFILE).hash == default.hash
    model, choice = profiles.resolve("default")
    assert model.hash == default.hash and choice.name == profiles.DEFAULT_PROFILE
    shipped = json.loads(Path(choice.path).read_text())
    assert shipped["stages"] == default_dict()["stages"] and shipped["delays"] == default_dict()["delays"]


def test_every_shipped_profile_loads_and_names_its_host_and_kernel():
    found = {p.name: p for p in profiles.list_profiles(user=False)}
    assert SHIPPED <= set(found)
    for name, p in found.items():
        data = json.loads(p.path.read_text())
        assert data["schema"] == SCHEMA and p.path.stem == name == data["name"]
        model = load_costs(name)
        block = model.provenance["profile"]
        assert block["name"] == name and block["host"] == "vm" and block["date"][:10] in name
        assert kernel_build(block["kernel"])[1] is not None and f"v{kernel_build(block['kernel'])[1]}-" in name
        assert block["cpu"]["vendor_id"] == ("AuthenticAMD" if name.startswith("amd") else "GenuineIntel")
        # the data of the first ones recorded only the masked model name
        assert (block["cpu"]["family"] is None) == any("not recorded" in n for n in block["notes"])
        assert len(block["data_sha256"]) == 64 and block["data"]
        assert block["heldout"]["pairs_ok"] <= block["heldout"]["pairs_total"]


@pytest.mark.skipif(not (ROOT / "tools/profiles/make_shipped.py").exists(), reason="not a source checkout")
def test_the_shipped_profiles_are_what_make_shipped_builds():
    r = subprocess.run([sys.executable, str(ROOT / "tools/profiles/make_shipped.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_host_id_from_cpuinfo_and_host_json(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
                       "model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 2\n\n"
                       "processor\t: 1\nvendor_id\t: Other\n")
    h = HostId.current(cpuinfo)
    assert (h.vendor_id, h.cpu_family, h.model, h.stepping) == ("GenuineIntel", 6, 207, 2)
    masked = HostId.from_host_json({"cpu_model": "AMD EPYC", "kernel": "6.18.44-fc-v1272",
                                    "uname": "Linux vm 6.18.44-fc-v1272 #1 SMP"})
    assert masked == HostId("AuthenticAMD", None, None, None, "AMD EPYC", "6.18.44-fc-v1272", "vm")
    assert HostId.from_host_json({"cpu_model": "Intel(R) Xeon(R) Processor"}).vendor_id == "GenuineIntel"
    assert HostId.from_host_json({"cpu_model": "QEMU Virtual CPU"}).vendor_id is None
    full = HostId.from_host_json({"cpu": AMD_HERE.cpu_dict(), "kernel": AMD_HERE.kernel})
    assert full.same_cpu(AMD_HERE) and full.label() == "AuthenticAMD 25/17/1, 6.18.44-fc-v1300"


def test_match_host_json_and_the_table(tmp_path):
    host_json = tmp_path / "measured.csv.host.json"
    host_json.write_text(json.dumps({"cpu_model": "Intel(R) Xeon(R) Processor", "kernel": "6.18.44-fc-v769"}))
    assert profiles.match_host_json(host_json).name == "xeon-v769-2026-11-25"
    table = profiles.format_profiles_table(AMD_ELSE)
    starred = [line for line in table.splitlines() if line.startswith("*")]
    assert len(starred) == 1 and "amd-epyc-v1272-2026-12-06" in starred[0]
    assert NOTICE in table and all(name in table for name in SHIPPED)
    table = profiles.format_profiles_table(AMD_HERE)
    starred = [line for line in table.splitlines() if line.startswith("*")]
    assert len(starred) == 1 and "amd-epyc-v1300-2026-12-06" in starred[0] and "no profile" not in table


def test_this_amd_guest_gets_its_own_shipped_profile_without_a_notice():
    """The v1300 data recorded family, model and stepping: auto's rule 2 matches it exactly."""
    _, choice = profiles.resolve("auto", host=AMD_HERE)
    assert (choice.name, choice.notice) == ("amd-epyc-v1300-2026-12-06", None)
    assert choice.label == "amd-epyc-v1300-2026-12-06 (auto: same CPU and kernel)"
    host_json = ROOT / "data/hosts/amd-epyc-2026-12-06-v1300b/measured-host.csv.host.json"
    if host_json.exists():  # a source checkout
        assert profiles.match_host_json(host_json).name == "amd-epyc-v1300-2026-12-06"


def test_the_notice_is_logged_once_per_process_on_the_lbsim_logger(monkeypatch, caplog):
    monkeypatch.setattr(profiles, "_NOTICED", set())
    monkeypatch.setattr(profiles.HostId, "current", classmethod(lambda cls, cpuinfo=None: AMD_ELSE))
    import lbsim

    with caplog.at_level("WARNING", logger="lbsim"):
        for _ in range(3):
            r = lbsim.simulate(messages=20)
    notices = [rec for rec in caplog.records if "no profile of its own" in rec.getMessage()]
    assert len(notices) == 1 and notices[0].name == "lbsim" and notices[0].levelname == "WARNING"
    assert r.costs_profile == "amd-epyc-v1272-2026-12-06" and r.to_dict()["costs_profile"] == r.costs_profile
    assert r.config.costs == "auto"


def test_a_user_profile_cannot_shadow_a_shipped_one_or_be_overwritten_silently():
    with pytest.raises(CostFileError, match="shipped profile"):
        profiles.install_user_profile(default_dict(), name=profiles.DEFAULT_PROFILE, host=AMD_HERE)
    profiles.install_user_profile(default_dict(), name="mine", host=AMD_HERE, date="2026-12-07")
    with pytest.raises(CostFileError, match="exists"):
        profiles.install_user_profile(default_dict(), name="mine", host=AMD_HERE, date="2026-12-07")
    profiles.install_user_profile(default_dict(), name="mine", host=AMD_HERE, date="2026-12-08", overwrite=True)
    assert load_costs("mine").provenance["profile"]["date"] == "2026-12-08"


def test_the_cli_lists_profiles_and_every_output_names_the_one_used(monkeypatch, capsys, tmp_path):
    from lbsim.cli import main

    monkeypatch.setenv(profiles.ENV_VAR, profiles.DEFAULT_PROFILE)
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED) and f"auto: LBSIM_COSTS={profiles.DEFAULT_PROFILE}" in out
    host_json = tmp_path / "m.csv.host.json"
    host_json.write_text(json.dumps({"cpu": AMD_HERE.cpu_dict(), "kernel": AMD_HERE.kernel}))
    assert main(["profiles", "--match", str(host_json)]) == 0
    assert "auto: amd-epyc-v1300-2026-12-06" in capsys.readouterr().out
    assert main(["profiles", "--match", str(tmp_path / "nope.json")]) == 2
    label = f"costs: {profiles.DEFAULT_PROFILE} (LBSIM_COSTS)"
    for argv in (["simulate", "--messages", "20"], ["compare", "--messages", "20"], ["trace"]):
        assert main(argv) == 0
        assert label in capsys.readouterr().out.splitlines(), argv
    assert main(["simulate", "--messages", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["costs_profile"] == profiles.DEFAULT_PROFILE
    assert main(["compare", "--messages", "20", "--json", "--costs", "xeon-v769-2026-11-25"]) == 0
    assert json.loads(capsys.readouterr().out)["costs_profile"] == "xeon-v769-2026-11-25"


@pytest.mark.parametrize("text", ["[1, 2]", "{}", '{"runs": []}', '"vm"'])
def test_match_refuses_a_json_file_that_is_not_a_host_json_in_one_line(tmp_path, text):
    f = tmp_path / "x.json"
    f.write_text(text)
    p = subprocess.run([sys.executable, "-m", "lbsim", "profiles", "--match", str(f)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(f) in lines[0] and ".host.json" in lines[0] and not p.stdout


def test_a_bad_lbsim_costs_names_the_variable_and_a_broken_profile_file_is_said_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(profiles.ENV_VAR, "nosuch")
    with pytest.raises(CostFileError) as e:
        profiles.resolve("auto")
    assert str(e.value).startswith("LBSIM_COSTS=nosuch") and "unknown cost profile 'nosuch'" in str(e.value)
    monkeypatch.delenv(profiles.ENV_VAR)
    folder = profiles.user_dir()
    folder.mkdir(parents=True)
    (folder / "broken.json").write_bytes(b"\xff{")
    with caplog.at_level("WARNING", logger="lbsim.profiles"):
        for _ in range(3):
            assert "broken" not in profiles.profile_names()
    assert [r.getMessage().count("broken.json") for r in caplog.records] == [1]


def test_a_binary_cost_file_is_one_line_not_a_traceback(tmp_path):
    f = tmp_path / "costs.json"
    f.write_bytes(b"\xff\xfe{binary")
    with pytest.raises(CostFileError, match="not UTF-8"):
        load_costs(str(f))
    p = subprocess.run([sys.executable, "-m", "lbsim", "simulate", "--messages", "20", "--costs", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and str(f) in p.stderr


def test_a_broken_own_profile_that_auto_picks_says_what_to_do(monkeypatch):
    monkeypatch.setattr(HostId, "current", classmethod(lambda cls, cpuinfo="": AMD_HERE))
    folder = profiles.user_dir()
    folder.mkdir(parents=True)
    block = {"name": "mine", "cpu": AMD_HERE.cpu_dict(), "kernel": AMD_HERE.kernel, "date": "2026-12-07"}
    (folder / "mine.json").write_text(json.dumps({"schema": SCHEMA, "provenance": {"profile": block}}))
    with pytest.raises(CostFileError) as e:
        profiles.resolve("auto")
    msg = str(e.value)
    assert str(folder / "mine.json") in msg and "remove it" in msg and "lbsim calibrate" in msg and "\n" not in msg
