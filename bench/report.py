"""Printing results, writing them as JSON, and comparing two runs (``--compare A B``)."""

import json
import math
from pathlib import Path
from typing import Any

from bench.profiling import print_profile
from bench.scenarios import Result

# The figure each scenario's one-line summary shows beside its ratio.
HEADLINES = {
    "overhead": ("executions_per_execution_ms", "direct_per_execution_ms", "ms/exec"),
    "concurrency": ("first_submit_to_all_terminal_s", "ideal_s", "s"),
    "submit": ("api.throughput_per_s", "bare_in_process.throughput_per_s", "POST/s"),
    "memory": ("per_execution_kib", None, "KiB/exec"),
    "pydantic_ai": (
        "types.structured-task.service_cpu_ms_per_execution",
        "types.structured-task.baseline_cpu_ms_per_execution",
        "ms CPU/exec",
    ),
    "latency": ("idle.first_model_request.p50_ms", None, "ms p50"),
    "fleet": ("target_case.in_flight_at_once", "target_case.held", "in flight"),
}


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON value by dotted path."""
    found: dict[str, float] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            found.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        found[prefix] = float(value)
    return found


def _lookup(figures: dict[str, Any], path: str | None) -> Any:
    if path is None:
        return None
    value: Any = figures
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def print_result(name: str, result: Result, seconds: float) -> None:
    print(f"\n--- {name} ({seconds:.1f}s)")
    for key, value in result.figures.items():
        if name == "list" and key in ("cases", "baselines"):
            continue  # printed line by line as it ran
        print(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    verdict = {True: "MET", False: "MISSED", None: "n/a"}[result.met]
    ratio = "" if result.ratio is None else f"ratio {result.ratio}  "
    print(f"  => {ratio}target {result.target}: {verdict}")
    for note in result.notes:
        print(f"  note: {note}")
    for process, summary in result.profiles.items():
        print_profile(process, summary)


def print_summary(results: dict[str, Any]) -> None:
    print("\n=== summary")
    print(f"  {'scenario':<12} {'figure':>14} {'baseline':>14}  {'ratio':>7}  {'target':<34} met")
    for name, data in results.items():
        if "error" in data:
            print(f"  {name:<12} ERROR: {data['error']}")
            continue
        figure, baseline, unit = HEADLINES.get(name, (None, None, ""))
        value = _lookup(data["figures"], figure)
        base = _lookup(data["figures"], baseline)
        if name == "list":
            cases = data["figures"]["cases"]
            value = max((c.get("p99_ms", 0) for c in cases.values()), default=None)
            base = data["figures"]["baselines"]["readyz"].get("p99_ms")
            unit = "ms p99"
        shown = "" if value is None else f"{value:g} {unit}"
        shown_base = "" if base is None else f"{base:g} {unit}"
        ratio = "" if data["ratio"] is None else f"{data['ratio']:g}"
        met = {True: "yes", False: "NO", None: "n/a"}[data["met"]]
        print(f"  {name:<12} {shown:>14} {shown_base:>14}  {ratio:>7}  {data['target']:<34} {met}")


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def compare(first: Path, second: Path) -> None:
    """Print every numeric figure of two result files that differs, with the change."""
    a, b = (json.loads(p.read_text()) for p in (first, second))
    left = flatten({k: _comparable(v) for k, v in a.get("scenarios", {}).items()})
    right = flatten({k: _comparable(v) for k, v in b.get("scenarios", {}).items()})
    for label, path, doc in (("A", first, a), ("B", second, b)):
        meta = doc.get("meta", {})
        size = "quick" if meta.get("quick") else "full"
        print(f"{label}: {path} ({meta.get('started')}, {size}, commit {meta.get('commit')})")
    if a.get("meta", {}).get("quick") != b.get("meta", {}).get("quick"):
        print("warning: one run is --quick and the other is not; sizes differ")
    print(f"{'figure':<70} {'A':>12} {'B':>12} {'change':>9}")
    for key in sorted(set(left) | set(right)):
        x, y = left.get(key), right.get(key)
        if x == y:
            continue
        change = "" if not x or y is None else f"{100 * (y - x) / abs(x):+.1f}%"
        print(f"{key:<70} {_num(x):>12} {_num(y):>12} {change:>9}")
    for name in sorted(set(a.get("scenarios", {})) | set(b.get("scenarios", {}))):
        met_a = a.get("scenarios", {}).get(name, {}).get("met")
        met_b = b.get("scenarios", {}).get(name, {}).get("met")
        print(f"{name:<12} target met: A {met_a}  B {met_b}")


def _comparable(scenario: dict[str, Any]) -> dict[str, Any]:
    # Figures and the ratio; not the profiles nor the plans.
    return {"figures": scenario.get("figures", {}), "ratio": scenario.get("ratio")}


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
