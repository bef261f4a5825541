"""CPU time spent by each process of the stack during a measured phase, from /proc.

On a small shared machine wall times depend on whatever else runs (a test suite, the harness
itself); CPU seconds per execution do not, so every scenario reports both. ``others`` is the
machine's busy time not spent by any process named here, PostgreSQL backends of the scratch
database or Redis: load the benchmark did not cause. The backends of the harness's own pool
(its end watchers, its polls of PostgreSQL) are ``harness_postgres``, not ``postgres``.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
# The processes that are the service, whose CPU per execution the scenarios add up.
SERVICE_PROCESSES = ("api", "worker", "postgres", "redis")


def process_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command may hold spaces and parentheses: the fields start after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICKS


def _matching(fragments: tuple[str, ...]) -> dict[int, float]:
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(fragment in command for fragment in fragments):
            found[int(entry.name)] = process_seconds(int(entry.name))
    return found


@dataclass
class CpuMeter:
    processes: dict[str, int]
    database: str
    # The harness's own backends (its pool's), filled as its connections open.
    harness_backends: set[int] = field(default_factory=set)
    _start: dict[str, float] = field(default_factory=dict)
    _backends: dict[int, float] = field(default_factory=dict)
    _redis: dict[int, float] = field(default_factory=dict)

    def start(self) -> "CpuMeter":
        self._start = {name: process_seconds(pid) for name, pid in self.processes.items()}
        self._start["machine"] = machine_busy_seconds()
        self._backends = _matching(("postgres:", f" {self.database} "))
        self._redis = _matching(("redis-server",))
        return self

    def stop(self) -> dict[str, float]:
        spent = {
            name: process_seconds(pid) - self._start[name] for name, pid in self.processes.items()
        }
        backends = _matching(("postgres:", f" {self.database} "))
        used = {pid: cpu - self._backends.get(pid, 0.0) for pid, cpu in backends.items()}
        spent["postgres"] = sum(v for pid, v in used.items() if pid not in self.harness_backends)
        spent["harness_postgres"] = sum(
            v for pid, v in used.items() if pid in self.harness_backends
        )
        redis = _matching(("redis-server",))
        spent["redis"] = sum(cpu - self._redis.get(pid, 0.0) for pid, cpu in redis.items())
        machine = machine_busy_seconds() - self._start["machine"]
        spent["others"] = max(0.0, machine - sum(spent.values()))
        spent["machine"] = machine
        return {name: round(seconds, 2) for name, seconds in spent.items()}


def per_unit_ms(spent: dict[str, float], units: int) -> dict[str, float]:
    """CPU milliseconds per execution (or request) of each process."""
    if units <= 0:
        return {}
    skip = ("machine", "others")
    return {k: round(1000 * v / units, 2) for k, v in spent.items() if k not in skip}
