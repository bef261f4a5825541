"""What the sizing section reads from a results document, and how it writes a figure."""

from pathlib import Path
from typing import Any

# The documentation site's Sizing page (mkdocs.yml), where the block lives.
PAGE = Path(__file__).resolve().parents[2] / "docs" / "sizing.md"
BEGIN = "<!-- sizing:begin -->"
END = "<!-- sizing:end -->"
NOT_MEASURED = "not measured in this run"
DASH = "\N{EN DASH}"  # of a range of figures

# Every scenario of ``python -m bench`` (a run of all of them is a full run).
SCENARIOS = (
    "latency",
    "pydantic_ai",
    "overhead",
    "concurrency",
    "memory",
    "fleet",
    "streams",
    "submit",
    "protocols",
    "batches",
    "schedules",
    "journal",
    "list",
    "fairness",
)


class Scenario:
    """One scenario of the document: its figures when it ran to the end, else nothing."""

    def __init__(self, document: dict[str, Any], name: str) -> None:
        data = document.get("scenarios", {}).get(name)
        self.name = name
        self.ok = isinstance(data, dict) and "error" not in data and "figures" in data
        self.data: dict[str, Any] = data if self.ok else {}
        self.error = data.get("error") if isinstance(data, dict) else None

    def get(self, path: str) -> Any:
        value: Any = self.data.get("figures", {})
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def load(self) -> str:
        """The 1-minute load average at the scenario's start and end, when recorded."""
        load = self.data.get("load_average")
        if not isinstance(load, dict):
            return ""
        start, end = load.get("start"), load.get("end")
        if not start or not end:
            return ""
        return f"{start[0]:.1f}→{end[0]:.1f}"


def number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "?"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 10):
        return f"{int(value):,}"
    return f"{value:,.{0 if abs(value) >= 1000 else digits}f}"


def short(value: float) -> str:
    """1 decimal at most, none when it is 0: 5, 2.1, 0.1."""
    return f"{value:.1f}".removesuffix(".0")


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "—"}[ok]


def at_most(value: Any, target: float) -> bool | None:
    return None if value is None else bool(value <= target)
