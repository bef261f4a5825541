"""The benchmark scenarios. Each takes the shared ``BenchRun`` and returns a ``Result``."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    figures: dict[str, Any]
    ratio: float | None
    target: str
    met: bool | None
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "figures": self.figures,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "notes": self.notes,
            "profiles": self.profiles,
            "details": self.details,
        }


def failure_codes(bodies: list[Any]) -> dict[str, int]:
    """How many executions ended failed, by failure code (or HTTP status when never accepted)."""
    codes: dict[str, int] = {}
    for body in bodies:
        if not isinstance(body, dict) or body.get("status") == "finished":
            continue
        code = str(body.get("failure_code") or body.get("status") or body)[:80]
        codes[code] = codes.get(code, 0) + 1
    return codes
