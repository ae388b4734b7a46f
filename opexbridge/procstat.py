"""CPU time of the processes a benchmark runs on, read from Linux's /proc.

`make bench` uses it to say what limits the pipeline: CPU milliseconds each process
spends per order (the suite's services, the Kafka broker, PostgreSQL and the load
generator itself), and how much of the machine was idle. Where /proc is missing (not
Linux) every figure is None and the benchmark still runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LISTEN = "0A"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used; None if it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _parent(pid: int) -> int | None:
    try:
        return int((PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _pids() -> list[int]:
    try:
        return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def with_children(pid: int) -> list[int]:
    """The process and its direct children (PostgreSQL's backends, say)."""
    return [pid] + [p for p in _pids() if p != pid and _parent(p) == pid]


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` (any address), if this user may see it."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if (
                len(parts) > 9
                and parts[3] == _LISTEN
                and int(parts[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(parts[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in _pids():
        try:
            fds = list((PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    return pid
            except OSError:
                continue
    return None


def machine_busy_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    total = sum(ticks[:8])
    return (total - idle) / _TICK, total / _TICK


Groups = Mapping[str, Callable[[], Iterable[int]]]


@dataclass(frozen=True)
class Sample:
    at: float
    cpu: dict[str, float]
    machine: tuple[float, float] | None


class CpuMeter:
    """CPU seconds per named group of processes between two samples."""

    def __init__(self, groups: Groups) -> None:
        self.groups = groups

    def sample(self) -> Sample:
        cpu: dict[str, float] = {}
        for name, pids in self.groups.items():
            cpu[name] = sum(s for s in (cpu_seconds(p) for p in pids()) if s is not None)
        return Sample(time.monotonic(), cpu, machine_busy_seconds())

    @staticmethod
    def usage(before: Sample, after: Sample) -> dict[str, float]:
        """Per group, CPU seconds used between the samples (a group whose processes
        changed in between, a restarted service, counts from zero: never negative)."""
        return {
            name: max(0.0, after.cpu.get(name, 0.0) - before.cpu.get(name, 0.0))
            for name in after.cpu
        }

    @staticmethod
    def machine_busy(before: Sample, after: Sample) -> float | None:
        """Share of the machine's CPU (all cores) that was busy between the samples."""
        if before.machine is None or after.machine is None:
            return None
        busy = after.machine[0] - before.machine[0]
        total = after.machine[1] - before.machine[1]
        return min(1.0, busy / total) if total > 0 else None  # tick rounding


def per_order_ms(usage: Mapping[str, float], orders: int) -> dict[str, float]:
    """CPU milliseconds per order for each group, largest first, and their total."""
    if orders <= 0:
        return {}
    ranked = sorted(usage.items(), key=lambda kv: kv[1], reverse=True)
    out = {name: round(seconds * 1000 / orders, 2) for name, seconds in ranked}
    out["total"] = round(sum(usage.values()) * 1000 / orders, 2)
    return out
