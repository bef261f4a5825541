"""Sampling the API and worker processes with py-spy while a scenario runs (``--profile``).

py-spy is not a project dependency: ``.venv/bin/pip install py-spy``. Each recording is kept
as collapsed stacks (``<scenario>-<process>.txt`` in the run's work directory) and summarised:
the share of samples by package (self time) and the functions with the most self and
inclusive time.
"""

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLING_RATE = 50
FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")
ROOT = str(Path(__file__).resolve().parent.parent) + "/"


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def _place(path: str) -> tuple[str, str]:
    """(package, short path) of a frame's file."""
    if "site-packages/" in path:
        short = path.split("site-packages/", 1)[1]
    elif path.startswith(ROOT):
        short = path[len(ROOT) :]
    elif "/lib/python3" in path:
        short = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    else:
        short = path
    package = short.split("/", 1)[0].removesuffix(".py")
    if package == "stdlib":
        package = "stdlib:" + short.split("/")[1].removesuffix(".py")
    return package, short


def _frame(raw: str) -> tuple[str, str]:
    match = FRAME.match(raw)
    if match is None:
        return raw, raw
    package, short = _place(match["path"])
    return package, f"{match['function']} ({short})"


def summarise(collapsed: str, top: int = 15) -> dict[str, Any]:
    total = 0
    by_package: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        package, leaf = frames[-1]
        by_package[package] += count
        self_time[leaf] += count
        for name in {name for _, name in frames}:
            inclusive[name] += count

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)]

    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "self_by_package_pct": shares(by_package, top),
        "self_pct": shares(self_time, top),
        "inclusive_pct": shares(inclusive, top + 10),
    }


@dataclass
class Recording:
    name: str
    output: Path
    popen: subprocess.Popen[bytes]


class Profiler:
    """Records processes during one scenario; does nothing when py-spy is missing or off."""

    def __init__(self, directory: Path, enabled: bool) -> None:
        self.directory = directory
        self.binary = py_spy() if enabled else None
        self.recordings: list[Recording] = []
        if enabled and self.binary is None:
            print("  (--profile: py-spy not found; pip install py-spy into .venv)")

    def start(self, name: str, pid: int) -> None:
        if self.binary is None:
            return
        output = self.directory / f"{name}.txt"
        argv = [self.binary, "record", "--pid", str(pid), "--format", "raw"]
        argv += ["--rate", str(SAMPLING_RATE), "--output", str(output), "--nonblocking"]
        popen = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.recordings.append(Recording(name, output, popen))

    def stop(self) -> dict[str, Any]:
        """Stop every recording; a summary of each by name."""
        summaries: dict[str, Any] = {}
        for recording in self.recordings:
            if recording.popen.poll() is None:
                recording.popen.send_signal(signal.SIGINT)
            try:
                recording.popen.wait(30)
            except subprocess.TimeoutExpired:
                recording.popen.kill()
                recording.popen.wait(5)
            if recording.output.exists():
                summaries[recording.name] = summarise(recording.output.read_text())
                summaries[recording.name]["file"] = str(recording.output)
        self.recordings.clear()
        return summaries


def print_profile(name: str, summary: dict[str, Any]) -> None:
    if not summary.get("samples"):
        print(f"  profile {name}: no samples")
        return
    print(f"  profile {name}: {summary['samples']} samples ({summary['file']})")
    packages = ", ".join(f"{k} {v}%" for k, v in summary["self_by_package_pct"][:10])
    print(f"    self time by package: {packages}")
    print("    most inclusive time:")
    for frame, share in summary["inclusive_pct"][:25]:
        print(f"      {share:5.1f}%  {frame}")
    print("    most self time:")
    for frame, share in summary["self_pct"][:10]:
        print(f"      {share:5.1f}%  {frame}")
