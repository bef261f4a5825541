"""README.md's sizing section, rendered from one benchmark run's results document.

A full ``make bench`` (every scenario, not ``--quick``, not ``--only``, not ``--profile``)
rewrites the block between BEGIN and END in README.md at its end;
``python -m bench --sizing-from bench/results/<file>.json`` does it from an earlier run, and
``--write-readme`` makes a quick or partial run do it too. Every figure issue #17 names is
shown with its target and whether this run met it; a scenario the run did not measure (left
out, failed or interrupted) is said to be so, its figures not invented.
"""

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
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
    "journal",
    "list",
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


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "?"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 10):
        return f"{int(value):,}"
    return f"{value:,.{0 if abs(value) >= 1000 else digits}f}"


def _short(value: float) -> str:
    """1 decimal at most, none when it is 0: 5, 2.1, 0.1."""
    return f"{value:.1f}".removesuffix(".0")


def _verdict(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "—"}[ok]


def _at_most(value: Any, target: float) -> bool | None:
    return None if value is None else bool(value <= target)


class _Table:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def add(self, figure: str, measured: str, target: str, ok: bool | None, load: str) -> None:
        self.rows.append(f"| {figure} | {measured} | {target} | {_verdict(ok)} | {load} |")

    def missing(self, figure: str, target: str, scenario: Scenario) -> None:
        why = NOT_MEASURED + (" (the scenario failed)" if scenario.error else "")
        self.rows.append(f"| {figure} | {why} | {target} | — | |")

    def render(self) -> list[str]:
        return [
            "| figure (issue #17) | this run | target | | load |",
            "|---|---|---|---|---|",
            *self.rows,
        ]


def _latency_rows(table: _Table, latency: Scenario) -> None:
    idle = latency.get("idle.first_model_request") or {}
    load = latency.load()
    if not latency.ok or not idle.get("n"):
        table.missing("Idle service: POST's 202 → model's first request, p50", "≤ 10 ms", latency)
        table.missing("… p99", "≤ 30 ms", latency)
    else:
        p50, p99 = idle.get("p50_ms"), idle.get("p99_ms")
        first = "Idle service: POST's 202 → model's first request, p50"
        table.add(first, f"{_num(p50)} ms", "≤ 10 ms", _at_most(p50, 10), load)
        table.add("… p99", f"{_num(p99)} ms", "≤ 30 ms", _at_most(p99, 30), load)
    for key, label in (
        ("loaded", "200 in flight at 0.5 s model latency: server-side time added, p50"),
        ("loaded_holdable", "200 in flight at a rate this machine holds: time added, p50"),
    ):
        added = latency.get(f"{key}.server_added") or {}
        if not added.get("n"):
            table.missing(label, "≤ 25 ms", latency)
            continue
        model_s = latency.get(f"{key}.model_latency_s")
        if key == "loaded_holdable":
            label = f"200 in flight at {_num(model_s)} s model latency: time added, p50"
        p50 = added.get("p50_ms")
        cores = latency.get(f"{key}.cores_needed_at_that_cpu")
        needs = f"; needs {_num(cores)} cores at its CPU" if cores is not None else ""
        table.add(
            label,
            f"{_num(p50)} ms (p99 {_num(added.get('p99_ms'))} ms{needs})",
            "≤ 25 ms",
            _at_most(p50, 25),
            load,
        )
    cpu = latency.get("idle_worker.cpu_percent_of_a_core")
    if cpu is None:
        table.missing("Idle worker's CPU", "≤ 1 % of a core", latency)
    else:
        table.add("Idle worker's CPU", f"{cpu:.1f} % of a core", "≤ 1 % of a core", cpu <= 1, load)


def _pydantic_ai_rows(table: _Table, pai: Scenario) -> None:
    for key in ("structured-task", "catalog-enrichment"):
        label = f"Service CPU / plain `agent.run()`, {key}"
        data = pai.get(f"types.{key}")
        if not data:
            table.missing(label, "≤ 1.5x", pai)
            continue
        ratio = data.get("ratio")
        measured = (
            f"{_num(ratio, 2)}x ({_num(data.get('service_cpu_ms_per_execution'))} ms against "
            f"{_num(data.get('baseline_cpu_ms_per_execution'))} ms)"
        )
        table.add(label, measured, "≤ 1.5x", _at_most(ratio, 1.5), pai.load())


def _fleet_rows(table: _Table, fleet: Scenario) -> None:
    target = fleet.get("target_case")
    if not target:
        table.missing("Fleet: held executions in flight at once", "all", fleet)
        table.missing("Fleet: Redis commands per execution, most / fewest", "≤ 1.5x", fleet)
        return
    shape = f"{target.get('workers')} workers of {target.get('slots_per_worker')} slots"
    table.add(
        f"Fleet of {shape}: held executions in flight at once",
        f"{_num(target.get('in_flight_at_once'))} of {_num(target.get('held'))}",
        "all",
        bool(target.get("all_in_flight"))
        and all(f.get("all_in_flight") for f in fleet.get("fleets") or []),
        fleet.load(),
    )
    per_execution = [
        f.get("redis_commands_per_execution") for f in [*(fleet.get("fleets") or []), target]
    ]
    known = [v for v in per_execution if v is not None]
    growth = fleet.get("commands_per_execution_growth")
    spread = f" ({_num(min(known))}{DASH}{_num(max(known))})" if known else ""
    table.add(
        "Fleet: Redis commands per execution, most / fewest",
        f"{_num(growth, 2)}x{spread}",
        "≤ 1.5x",
        _at_most(growth, 1.5),
        fleet.load(),
    )


def _list_row(table: _Table, listing: Scenario) -> None:
    cases = listing.get("cases") or {}
    rows = listing.get("load.rows")
    label = f"List page p99, worst of {len(cases)} cases, {_num(rows)} executions"
    if not cases:
        table.missing("List page p99, every case", "≤ 20 ms", listing)
        return
    worst = max((c.get("p99_ms", 0.0) for c in cases.values()), default=None)
    table.add(label, f"{_num(worst)} ms", "≤ 20 ms", listing.data.get("met"), listing.load())


def _memory_row(table: _Table, memory: Scenario) -> None:
    kib = memory.get("per_execution_kib")
    if kib is None:
        table.missing("Worker memory per execution waiting on its model", "≤ 200 KiB", memory)
        return
    table.add(
        f"Worker memory per execution waiting on its model ({memory.get('in_flight_at_sample')})",
        f"{_num(kib)} KiB",
        "≤ 200 KiB",
        kib <= 200,
        memory.load(),
    )


def _worker_bullet(pai: Scenario, latency: Scenario, memory: Scenario) -> str:
    data = pai.get("types.structured-task")
    parts = ["- **Worker**: "]
    if data:
        worker = data["service"]["cpu_ms_per_execution"].get("worker")
        base = data.get("baseline_cpu_ms_per_execution")
        parts.append(
            f"{_num(worker)} ms of CPU per execution that makes one model call (structured-task), "
            f"of which pydantic-ai and the OpenAI client themselves are about {_num(base)} ms "
            "(what the same agent run with plain `agent.run()` in one process costs). One "
            "worker process "
            f"therefore *starts* about {_num(1000 / worker if worker else None, 0)} executions "
            "a second per core; for many short executions, run one worker per core rather "
            "than one large one. "
        )
    else:
        parts.append(f"CPU per execution {NOT_MEASURED}. ")
    kib = memory.get("per_execution_kib")
    if kib is not None:
        in_flight = memory.get("in_flight_at_sample") or 0
        parts.append(
            f"Executions waiting on a model cost no CPU and about {_num(kib, 0)} KiB each "
            f"({_num(in_flight)} in flight: +{_num(kib * in_flight / 1024, 0)} MiB). "
        )
    else:
        parts.append(f"Memory per execution {NOT_MEASURED}. ")
    idle = latency.get("idle_worker.cpu_percent_of_a_core")
    if idle is not None:
        parts.append(
            f"An idle worker used {idle:.1f} % of a core: it waits for a wake-up from the enqueue "
            "and polls every `AGENTRUN_WORKER_POLL_DELAY_SECONDS` besides."
        )
    return "".join(parts).rstrip()


def _service_bullet(pai: Scenario) -> list[str]:
    lines = ["- **The whole service against pydantic-ai** (API, worker, PostgreSQL and Redis, "]
    if not pai.ok:
        lines[0] += f"per execution): {NOT_MEASURED}."
        return lines
    lines[0] += "CPU per one-call execution, 20 at a time, against plain `agent.run()` of the "
    lines[0] += "same agent in the same run; target 1.5x):"
    for key in ("structured-task", "catalog-enrichment"):
        data = pai.get(f"types.{key}")
        if not data:
            lines.append(f"  - {key}: {NOT_MEASURED}.")
            continue
        per = data["service"]["cpu_ms_per_execution"]
        rest = data.get("where_the_rest_goes_ms", {})
        text = (
            f"  - {key}: {_num(data.get('service_cpu_ms_per_execution'))} ms, "
            f"{_num(data.get('ratio'), 2)}x the {_num(data.get('baseline_cpu_ms_per_execution'))} "
            f"ms of plain `agent.run()`. Where the rest goes: the worker "
            f"{_num(rest.get('worker_beyond_baseline'))} ms beyond the agent run (claim, trace, "
            f"outcome, arq), PostgreSQL {_num(per.get('postgres'))} ms (the statements and the "
            f"event log's triggers), the API {_num(per.get('api'))} ms (the POST), Redis "
            f"{_num(per.get('redis'))} ms."
        )
        work = data.get("database_work")
        if work:
            tables = work.get("tables_per_execution", {})
            written = ", ".join(
                f"{name} {_short(sum(t.values()))}"
                for name, t in sorted(tables.items(), key=lambda kv: -sum(kv[1].values()))
            )
            text += (
                f" In PostgreSQL each execution is {_short(work['transactions_per_execution'])}"
                f" transactions and writes {_short(work['rows_written_per_execution'])} rows"
                f" (inserted, updated or deleted; by table: {written})."
            )
        floor = data.get("durable_floor")
        if floor:
            text += (
                f" The least a durable execution service must do (bench/plain_agent.py "
                f"`--durable`: the same run plus its row, a journal row per model response "
                f"and its outcome, through one asyncpg pool) costs "
                f"{_num(floor.get('cpu_ms_per_execution'))} ms with its PostgreSQL: the "
                f"service is {_num(floor.get('service_over_floor'), 2)}x that floor."
            )
        lines.append(text)
    return lines


def _redis_bullet(fleet: Scenario) -> str:
    target = fleet.get("target_case")
    if not target:
        return f"- **Redis**: {NOT_MEASURED}."
    fleets = [*(fleet.get("fleets") or []), target]
    commands = [f["redis_commands_per_execution"] for f in fleets]
    cpu = [f["redis_cpu_ms_per_execution"] for f in fleets]
    per_worker = [f["redis_commands_per_s_while_held_per_worker"] for f in fleets]
    held = [f["held"] for f in fleets]
    sizes = sorted({f["workers"] for f in fleets})
    workers = ", ".join(str(n) for n in sizes[:-1]) + f" and {sizes[-1]}"
    return (
        f"- **Redis**: {_num(min(commands))}{DASH}{_num(max(commands))} commands and "
        f"{min(cpu):.2f}{DASH}{max(cpu):.2f} ms of Redis CPU per execution, for {workers} "
        f"workers and {_num(min(held))} to {_num(max(held))} executions in "
        f"flight (a poll reads only waiting jobs); each worker adds about "
        f"{_num(sum(per_worker) / len(per_worker), 0)} commands a second while it waits. "
        f"{target['workers']} workers of {target['slots_per_worker']} slots held "
        f"{_num(target['in_flight_at_once'])} of {_num(target['held'])} executions waiting on "
        "their model all at once."
    )


def _latency_bullet(latency: Scenario, cpus: int) -> str:
    idle = latency.get("idle.first_model_request") or {}
    if not latency.ok or not idle.get("n"):
        return f"- **Latency**: {NOT_MEASURED}."
    text = (
        f"- **Latency**: on an idle service, from the POST's 202 to the model receiving the "
        f"execution's first request: {_num(idle.get('p50_ms'))} ms at the median and "
        f"{_num(idle.get('p99_ms'))} ms at p99 (the worker is woken by the enqueue)."
    )
    loaded = latency.get("loaded") or {}
    if loaded.get("server_added", {}).get("n"):
        text += (
            f" 200 executions in flight at a model latency of 0.5 s means "
            f"{_num(loaded.get('executions_per_s_needed'))} executions a second, about "
            f"{_num(loaded.get('cores_needed_at_that_cpu'))} cores at the "
            f"{_num(loaded.get('service_cpu_ms_per_execution'))} ms of service CPU each "
            f"measured there: "
        )
        if (loaded.get("cores_needed_at_that_cpu") or 0) > cpus:
            text += (
                "this machine cannot hold it, and the time added there "
                f"({_num(loaded['server_added'].get('p50_ms'))} ms at the median) is waiting "
                "for CPU."
            )
        else:
            text += f"it added {_num(loaded['server_added'].get('p50_ms'))} ms at the median."
    holdable = latency.get("loaded_holdable") or {}
    if holdable.get("server_added", {}).get("n"):
        added = holdable["server_added"]
        text += (
            f" The same 200 in flight at {_num(holdable.get('model_latency_s'))} s "
            f"({_num(holdable.get('executions_per_s_needed'))} executions a second, the "
            f"service using {_num(holdable.get('service_cores_used'), 2)} cores, the machine "
            f"busy {_num(holdable.get('machine_cores_busy'), 2)} of {cpus}): "
            f"{_num(added.get('p50_ms'))} ms added at the median, {_num(added.get('p99_ms'))} "
            "ms at p99."
        )
    return text


def _api_bullet(submit: Scenario, listing: Scenario, pai: Scenario) -> str:
    parts = ["- **API**: "]
    api = submit.get("api")
    if api:
        parts.append(
            f"{_num(api.get('server_cpu_ms_per_post'))} ms of CPU per "
            f"`POST …/agentic-executions/` in the API process alone, "
            f"{submit.get('concurrency')} at a time ({_num(api.get('throughput_per_s'), 0)} a "
            "second with everything else on the machine"
        )
        structured = pai.get("types.structured-task.service.cpu_ms_per_execution.api")
        if structured is not None:
            parts.append(
                f"; the `pydantic_ai` scenario, 20 at a time, measures {_num(structured)} ms"
            )
        parts.append("). ")
    else:
        parts.append(f"CPU per POST {NOT_MEASURED}. ")
    cases = listing.get("cases") or {}
    if cases:
        p50 = [c["p50_ms"] for c in cases.values() if "p50_ms" in c]
        p99 = [c["p99_ms"] for c in cases.values() if "p99_ms" in c]
        parts.append(
            f"A list page answers in {_num(min(p50))}{DASH}{_num(max(p50))} ms at the median with "
            f"{_num(listing.get('load.rows'))} executions in the table (deep pages the slower: "
            f"`page` means skipping rows); the worst case's p99 is {_num(max(p99))} ms."
        )
    else:
        parts.append(f"List pages {NOT_MEASURED}.")
    return "".join(parts).rstrip()


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


def _rows(table: _Table, name: str, fill: Callable[[], None]) -> None:
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
    table = _Table()
    _rows(table, "latency", lambda: _latency_rows(table, s["latency"]))
    _rows(table, "pydantic_ai", lambda: _pydantic_ai_rows(table, s["pydantic_ai"]))
    _rows(table, "fleet", lambda: _fleet_rows(table, s["fleet"]))
    _rows(table, "list", lambda: _list_row(table, s["list"]))
    _rows(table, "memory", lambda: _memory_row(table, s["memory"]))
    lines = [
        BEGIN,
        "<!-- Written by `python -m bench` (bench/sizing.py) from a results file: regenerate it "
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
        *_text("Worker", lambda: _worker_bullet(s["pydantic_ai"], s["latency"], s["memory"])),
        *_text("The whole service", lambda: _service_bullet(s["pydantic_ai"])),
        *_text("Redis", lambda: _redis_bullet(s["fleet"])),
        *_text("Latency", lambda: _latency_bullet(s["latency"], cpus)),
        *_text("API", lambda: _api_bullet(s["submit"], s["list"], s["pydantic_ai"])),
        END,
    ]
    return "\n".join(lines) + "\n"


def write_readme(block: str, readme: Path = README) -> None:
    """Replace the block between the markers of ``readme`` (both must be there, once)."""
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{readme}: expected one {BEGIN} … {END} block")
    readme.write_text(pattern.sub(lambda _: block, text, count=1))
