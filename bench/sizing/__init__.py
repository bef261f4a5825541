"""The sizing section of docs/sizing.md, rendered from one benchmark run's results document.

A full ``make bench`` (every scenario, not ``--quick``, not ``--only``, not ``--profile``)
rewrites the block between BEGIN and END in docs/sizing.md at its end;
``python -m bench --sizing-from bench/results/<file>.json`` does it from an earlier run, and
``--write-sizing`` makes a quick or partial run do it too. Every figure issue #17 names is
shown with its target and whether this run met it; a scenario the run did not measure (left
out, failed or interrupted) is said to be so, its figures not invented.
"""

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.sizing.figures import BEGIN, END, NOT_MEASURED, PAGE, SCENARIOS, Scenario
from bench.sizing.prose import (
    api_bullet,
    latency_bullet,
    redis_bullet,
    service_bullet,
    worker_bullet,
)
from bench.sizing.table import (
    Table,
    fleet_rows,
    latency_rows,
    list_row,
    memory_row,
    pydantic_ai_rows,
)

__all__ = ["BEGIN", "END", "PAGE", "SCENARIOS", "render", "write_page"]


def _facts(document: dict[str, Any], source: str | None) -> str:
    meta = document.get("meta", {})
    started = meta.get("started", "")
    try:
        when = datetime.strptime(started, "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%d %H:%M %Z")
    except ValueError:
        when = started or "an unknown date"
    kind = "`--quick` (smaller sizes)" if meta.get("quick") else "full-size"
    names = meta.get("scenarios") or []
    every = set(names) >= set(SCENARIOS)
    scope = "every scenario" if every else f"only {', '.join(names)}"
    commit = meta.get("commit") or "unknown"
    dirty = meta.get("uncommitted_files")
    if dirty:
        commit += f" with {dirty} uncommitted file(s)"
    load = meta.get("load_average") or []
    after = meta.get("load_average_after") or []
    load_text = " / ".join(f"{x:.2f}" for x in load) if load else "unknown"
    if after:
        load_text += f" at its start (1 / 5 / 15 min), {after[0]:.2f} at its end"
    minutes = meta.get("total_seconds")
    text = (
        f"From a {kind} run of `python -m bench` ({scope}) on {when}: commit {commit}, "
        f"{meta.get('cpus', '?')} CPUs, load average {load_text}"
    )
    if minutes:
        text += f", {minutes / 60:.1f} minutes"
    text += "."
    loads = [x[0] for x in (load, after) if x]
    if loads and max(loads) > (meta.get("cpus") or 1):
        text += (
            " The machine was busy with other work beside the benchmark (a load average above "
            "its CPU count): wall times (latencies, list pages) are well above a quiet "
            "machine's, and CPU per execution somewhat above; compare the ratios."
        )
    if meta.get("interrupted"):
        text += " The run was interrupted."
    if source:
        text += f" Results: `{source}` (not committed)."
    return text


def _rows(table: Table, name: str, fill: Callable[[], None]) -> None:
    try:
        fill()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an older file's shape
        table.rows.append(f"| {name} | {NOT_MEASURED} (figures unreadable: {exc!r}) | | — | |")


def _text(name: str, write: Callable[[], Any]) -> list[str]:
    try:
        written = write()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"- **{name}**: {NOT_MEASURED} (figures unreadable: {exc!r})."]
    return written if isinstance(written, list) else [written]


def render(document: dict[str, Any], source: str | None = None) -> str:
    """The sizing block (markdown, markers included) for one results document."""
    s = {name: Scenario(document, name) for name in SCENARIOS}
    cpus = int(document.get("meta", {}).get("cpus") or 1)
    table = Table()
    _rows(table, "latency", lambda: latency_rows(table, s["latency"]))
    _rows(table, "pydantic_ai", lambda: pydantic_ai_rows(table, s["pydantic_ai"]))
    _rows(table, "fleet", lambda: fleet_rows(table, s["fleet"]))
    _rows(table, "list", lambda: list_row(table, s["list"]))
    _rows(table, "memory", lambda: memory_row(table, s["memory"]))
    lines = [
        BEGIN,
        "<!-- Written by `python -m bench` (bench/sizing/) from a results file: regenerate it "
        "(`python -m bench --sizing-from bench/results/<file>.json`), do not edit it by hand. -->",
        "",
        _facts(document, source),
        "",
        *table.render(),
        "",
        "*load*: the 1-minute load average at the start and end of the scenario that measured "
        "the figure. Each figure is one run's; on a shared machine they move by tens of per cent "
        "from run to run, ratios taken in the same run less so.",
        "",
        *_text("Worker", lambda: worker_bullet(s["pydantic_ai"], s["latency"], s["memory"])),
        *_text("The whole service", lambda: service_bullet(s["pydantic_ai"])),
        *_text("Redis", lambda: redis_bullet(s["fleet"])),
        *_text("Latency", lambda: latency_bullet(s["latency"], cpus)),
        *_text("API", lambda: api_bullet(s["submit"], s["list"], s["pydantic_ai"])),
        END,
    ]
    return "\n".join(lines) + "\n"


def write_page(block: str, page: Path = PAGE) -> None:
    """Replace the block between the markers of ``page`` (both must be there, once)."""
    text = page.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{page}: expected one {BEGIN} … {END} block")
    page.write_text(pattern.sub(lambda _: block, text, count=1))
