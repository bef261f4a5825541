"""The sizing section's table: each figure of issue #17 with its target and verdict."""

from bench.sizing.figures import DASH, NOT_MEASURED, Scenario, at_most, number, verdict


class Table:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def add(self, figure: str, measured: str, target: str, ok: bool | None, load: str) -> None:
        self.rows.append(f"| {figure} | {measured} | {target} | {verdict(ok)} | {load} |")

    def missing(self, figure: str, target: str, scenario: Scenario) -> None:
        why = NOT_MEASURED + (" (the scenario failed)" if scenario.error else "")
        self.rows.append(f"| {figure} | {why} | {target} | — | |")

    def render(self) -> list[str]:
        return [
            "| figure (issue #17) | this run | target | | load |",
            "|---|---|---|---|---|",
            *self.rows,
        ]


def latency_rows(table: Table, latency: Scenario) -> None:
    idle = latency.get("idle.first_model_request") or {}
    load = latency.load()
    if not latency.ok or not idle.get("n"):
        table.missing("Idle service: POST's 202 → model's first request, p50", "≤ 10 ms", latency)
        table.missing("… p99", "≤ 30 ms", latency)
    else:
        p50, p99 = idle.get("p50_ms"), idle.get("p99_ms")
        first = "Idle service: POST's 202 → model's first request, p50"
        table.add(first, f"{number(p50)} ms", "≤ 10 ms", at_most(p50, 10), load)
        table.add("… p99", f"{number(p99)} ms", "≤ 30 ms", at_most(p99, 30), load)
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
            label = f"200 in flight at {number(model_s)} s model latency: time added, p50"
        p50 = added.get("p50_ms")
        cores = latency.get(f"{key}.cores_needed_at_that_cpu")
        needs = f"; needs {number(cores)} cores at its CPU" if cores is not None else ""
        table.add(
            label,
            f"{number(p50)} ms (p99 {number(added.get('p99_ms'))} ms{needs})",
            "≤ 25 ms",
            at_most(p50, 25),
            load,
        )
    cpu = latency.get("idle_worker.cpu_percent_of_a_core")
    if cpu is None:
        table.missing("Idle worker's CPU", "≤ 1 % of a core", latency)
    else:
        table.add("Idle worker's CPU", f"{cpu:.1f} % of a core", "≤ 1 % of a core", cpu <= 1, load)


def pydantic_ai_rows(table: Table, pai: Scenario) -> None:
    for key in ("structured-task", "catalog-enrichment"):
        label = f"Service CPU / plain `agent.run()`, {key}"
        data = pai.get(f"types.{key}")
        if not data:
            table.missing(label, "≤ 1.5x", pai)
            continue
        ratio = data.get("ratio")
        measured = (
            f"{number(ratio, 2)}x ({number(data.get('service_cpu_ms_per_execution'))} ms against "
            f"{number(data.get('baseline_cpu_ms_per_execution'))} ms)"
        )
        table.add(label, measured, "≤ 1.5x", at_most(ratio, 1.5), pai.load())


def fleet_rows(table: Table, fleet: Scenario) -> None:
    target = fleet.get("target_case")
    if not target:
        table.missing("Fleet: held executions in flight at once", "all", fleet)
        table.missing("Fleet: Redis commands per execution, most / fewest", "≤ 1.5x", fleet)
        return
    shape = f"{target.get('workers')} workers of {target.get('slots_per_worker')} slots"
    table.add(
        f"Fleet of {shape}: held executions in flight at once",
        f"{number(target.get('in_flight_at_once'))} of {number(target.get('held'))}",
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
    spread = f" ({number(min(known))}{DASH}{number(max(known))})" if known else ""
    table.add(
        "Fleet: Redis commands per execution, most / fewest",
        f"{number(growth, 2)}x{spread}",
        "≤ 1.5x",
        at_most(growth, 1.5),
        fleet.load(),
    )


def list_row(table: Table, listing: Scenario) -> None:
    cases = listing.get("cases") or {}
    rows = listing.get("load.rows")
    label = f"List page p99, worst of {len(cases)} cases, {number(rows)} executions"
    if not cases:
        table.missing("List page p99, every case", "≤ 20 ms", listing)
        return
    worst = max((c.get("p99_ms", 0.0) for c in cases.values()), default=None)
    table.add(label, f"{number(worst)} ms", "≤ 20 ms", listing.data.get("met"), listing.load())


def memory_row(table: Table, memory: Scenario) -> None:
    kib = memory.get("per_execution_kib")
    if kib is None:
        table.missing("Worker memory per execution waiting on its model", "≤ 200 KiB", memory)
        return
    table.add(
        f"Worker memory per execution waiting on its model ({memory.get('in_flight_at_sample')})",
        f"{number(kib)} KiB",
        "≤ 200 KiB",
        kib <= 200,
        memory.load(),
    )
