"""Analytic checks of the production CPU/task/wait-queue classes as a queueing station.

A task on one CPU serves jobs from a queue (sleeping on a WaitQueue when it is empty);
Poisson arrivals wake it.  With zero switch cost the CPU is an M/G/1 FIFO server, so the
mean time in system must match the closed forms:

* M/M/1: W = 1 / (mu - lambda)
* M/D/1: W = 1/mu + rho / (2 mu (1 - rho))      (Pollaczek-Khinchine)

Tolerance: 4 standard errors of the mean from 20 batch means (batches of 5000 jobs are
long against the relaxation time of a rho = 0.5 queue, ~12 service times, so the batch
means are nearly independent); a wrong model is off by far more (e.g. ignoring queueing
gives W = 1/mu, 50 % low for M/M/1).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from lbsim.costs import DELAYS, cost_model_from_dict
from lbsim.kernels import kernel_profile
from lbsim.model.sim import Sim
from lbsim.model.stages import STAGES
from lbsim.model.task import Task, WaitQueue

ZERO = cost_model_from_dict({
    "stages": {s: {"fixed_ns": 0.0} for s in STAGES},
    "delays": {d: {"mean_ns": 0.0} for d in DELAYS},
})


def run_station(service: str, n: int, lam: float, mu: float, seed: int):
    sim = Sim(cpus=1, costs=ZERO, kernel=kernel_profile("linux-6.12"), seed=seed, deterministic=True,
              trace=False, policy="fair")
    env = sim.env
    rng = np.random.default_rng(seed)
    inter = rng.exponential(1 / lam, n).tolist()
    serv = (rng.exponential(1 / mu, n) if service == "M" else np.full(n, 1 / mu)).tolist()
    q: deque[float] = deque()
    wq = WaitQueue("station")
    sojourn: list[float] = []
    area = [0.0, 0.0]  # integral of N(t) dt, time of the last change

    def change(delta: int) -> None:
        now = env.now
        area[0] += (len(q)) * (now - area[1])
        area[1] = now

    def server(task: Task):
        i = 0
        while True:
            while not q:
                yield wq
            yield [serv[i], ()]
            change(-1)
            sojourn.append(env.now - q.popleft())
            i += 1

    def arrivals():
        for gap in inter:
            ev = env.timeout(gap)
            yield ev
            change(+1)
            q.append(env.now)
            sim.wake_all(wq, None)

    t = Task("server", sim.cpus[0], None)
    t.gen = server(t)
    t.state = 2
    sim.cpus[0].enqueue_task(t)
    env.process(arrivals())
    while len(sojourn) < n:
        env.step()
    return np.array(sojourn), area[0], env.now


@pytest.mark.parametrize("service,expected", [("M", 1 / (1.0 - 0.5)), ("D", 1.0 + 0.5 / (2 * 1.0 * 0.5))])
def test_cpu_as_m_g_1_matches_closed_form(service, expected):
    lam, mu = 0.5e-3, 1.0e-3  # per ns: 1 us mean service, rho = 0.5
    w, _, _ = run_station(service, 100_000, lam, mu, seed=11)
    expected_ns = expected * 1000.0
    batches = w.reshape(20, -1).mean(axis=1)
    se = batches.std(ddof=1) / np.sqrt(len(batches))
    assert abs(w.mean() - expected_ns) < 4 * se
    assert abs(w.mean() - expected_ns) < 0.05 * expected_ns


def test_littles_law_on_the_station():
    lam, mu = 0.7e-3, 1.0e-3
    w, area, end = run_station("M", 30_000, lam, mu, seed=5)
    # the system starts and ends empty, so L = lambda W holds exactly on the sample path
    L = area / end
    lam_hat = len(w) / end
    assert L == pytest.approx(lam_hat * w.mean(), rel=1e-9)
