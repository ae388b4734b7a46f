"""The /proc readings `make bench` uses to say what limits the pipeline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opexbridge import procstat
from opexbridge.procstat import CpuMeter, Sample, per_order_ms

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_cpu_seconds_of_this_process_grows_with_work() -> None:
    before = procstat.cpu_seconds(os.getpid())
    assert before is not None
    deadline = time.monotonic() + 5  # far more than 0.05 s of CPU on any machine
    while time.monotonic() < deadline:
        sum(range(10_000))
        if (procstat.cpu_seconds(os.getpid()) or 0.0) - before >= 0.05:
            break
    assert (procstat.cpu_seconds(os.getpid()) or 0.0) - before >= 0.05


def test_cpu_seconds_of_a_gone_process_is_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert procstat.cpu_seconds(child.pid) is None


def test_listening_pid_finds_the_process_holding_the_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert procstat.listening_pid(port) == os.getpid()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]  # bound, never listening
        assert procstat.listening_pid(free) is None


def test_with_children_lists_the_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pids = procstat.with_children(os.getpid())
        assert pids[0] == os.getpid()
        assert child.pid in pids
    finally:
        child.kill()
        child.wait()


def test_machine_busy_is_a_share_of_all_cores() -> None:
    meter = CpuMeter({"me": lambda: [os.getpid()]})
    before = meter.sample()
    total = 0
    while meter.sample().at - before.at < 0.1:
        total += sum(range(10_000))
    after = meter.sample()
    busy = CpuMeter.machine_busy(before, after)
    assert busy is not None
    assert 0.0 < busy <= 1.0
    assert CpuMeter.usage(before, after)["me"] > 0


def test_usage_never_negative_when_a_process_was_replaced() -> None:
    before = Sample(0.0, {"svc": 5.0, "kafka": 1.0}, None)
    after = Sample(1.0, {"svc": 0.5, "kafka": 1.25}, None)
    assert CpuMeter.usage(before, after) == {"svc": 0.0, "kafka": 0.25}
    assert CpuMeter.machine_busy(before, after) is None


def test_per_order_ms_ranks_processes_and_totals() -> None:
    figures = per_order_ms({"risk": 0.5, "kafka": 2.0, "gateway": 1.5}, 1000)
    assert list(figures) == ["kafka", "gateway", "risk", "total"]
    assert figures == {"kafka": 2.0, "gateway": 1.5, "risk": 0.5, "total": 4.0}
    assert per_order_ms({"risk": 1.0}, 0) == {}
