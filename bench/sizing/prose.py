"""The sizing section's bullets: what the figures mean for a worker, the service, Redis,
latency and the API."""

from bench.sizing.figures import DASH, NOT_MEASURED, Scenario, number, short


def worker_bullet(pai: Scenario, latency: Scenario, memory: Scenario) -> str:
    data = pai.get("types.structured-task")
    parts = ["- **Worker**: "]
    if data:
        worker = data["service"]["cpu_ms_per_execution"].get("worker")
        base = data.get("baseline_cpu_ms_per_execution")
        parts.append(
            f"{number(worker)} ms of CPU per execution that makes one model call "
            "(structured-task), "
            f"of which pydantic-ai and the OpenAI client themselves are about {number(base)} ms "
            "(what the same agent run with plain `agent.run()` in one process costs). One "
            "worker process "
            f"therefore *starts* about {number(1000 / worker if worker else None, 0)} executions "
            "a second per core; for many short executions, run one worker per core rather "
            "than one large one. "
        )
    else:
        parts.append(f"CPU per execution {NOT_MEASURED}. ")
    kib = memory.get("per_execution_kib")
    if kib is not None:
        in_flight = memory.get("in_flight_at_sample") or 0
        parts.append(
            f"Executions waiting on a model cost no CPU and about {number(kib, 0)} KiB each "
            f"({number(in_flight)} in flight: +{number(kib * in_flight / 1024, 0)} MiB). "
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


def service_bullet(pai: Scenario) -> list[str]:
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
            f"  - {key}: {number(data.get('service_cpu_ms_per_execution'))} ms, "
            f"{number(data.get('ratio'), 2)}x the "
            f"{number(data.get('baseline_cpu_ms_per_execution'))} "
            f"ms of plain `agent.run()`. Where the rest goes: the worker "
            f"{number(rest.get('worker_beyond_baseline'))} ms beyond the agent run (claim, trace, "
            f"outcome, arq), PostgreSQL {number(per.get('postgres'))} ms (the statements and the "
            f"event log's triggers), the API {number(per.get('api'))} ms (the POST), Redis "
            f"{number(per.get('redis'))} ms."
        )
        work = data.get("database_work")
        if work:
            tables = work.get("tables_per_execution", {})
            written = ", ".join(
                f"{name} {short(sum(t.values()))}"
                for name, t in sorted(tables.items(), key=lambda kv: -sum(kv[1].values()))
            )
            text += (
                f" In PostgreSQL each execution is {short(work['transactions_per_execution'])}"
                f" transactions and writes {short(work['rows_written_per_execution'])} rows"
                f" (inserted, updated or deleted; by table: {written})."
            )
        floor = data.get("durable_floor")
        if floor:
            text += (
                f" The least a durable execution service must do (bench/plain_agent.py "
                f"`--durable`: the same run plus its row, a journal row per model response "
                f"and its outcome, through one asyncpg pool) costs "
                f"{number(floor.get('cpu_ms_per_execution'))} ms with its PostgreSQL: the "
                f"service is {number(floor.get('service_over_floor'), 2)}x that floor."
            )
        lines.append(text)
    return lines


def redis_bullet(fleet: Scenario) -> str:
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
        f"- **Redis**: {number(min(commands))}{DASH}{number(max(commands))} commands and "
        f"{min(cpu):.2f}{DASH}{max(cpu):.2f} ms of Redis CPU per execution, for {workers} "
        f"workers and {number(min(held))} to {number(max(held))} executions in "
        f"flight (a poll reads only waiting jobs); each worker adds about "
        f"{number(sum(per_worker) / len(per_worker), 0)} commands a second while it waits. "
        f"{target['workers']} workers of {target['slots_per_worker']} slots held "
        f"{number(target['in_flight_at_once'])} of {number(target['held'])} executions waiting on "
        "their model all at once."
    )


def latency_bullet(latency: Scenario, cpus: int) -> str:
    idle = latency.get("idle.first_model_request") or {}
    if not latency.ok or not idle.get("n"):
        return f"- **Latency**: {NOT_MEASURED}."
    text = (
        f"- **Latency**: on an idle service, from the POST's 202 to the model receiving the "
        f"execution's first request: {number(idle.get('p50_ms'))} ms at the median and "
        f"{number(idle.get('p99_ms'))} ms at p99 (the worker is woken by the enqueue)."
    )
    loaded = latency.get("loaded") or {}
    if loaded.get("server_added", {}).get("n"):
        text += (
            f" 200 executions in flight at a model latency of 0.5 s means "
            f"{number(loaded.get('executions_per_s_needed'))} executions a second, about "
            f"{number(loaded.get('cores_needed_at_that_cpu'))} cores at the "
            f"{number(loaded.get('service_cpu_ms_per_execution'))} ms of service CPU each "
            f"measured there: "
        )
        if (loaded.get("cores_needed_at_that_cpu") or 0) > cpus:
            text += (
                "this machine cannot hold it, and the time added there "
                f"({number(loaded['server_added'].get('p50_ms'))} ms at the median) is waiting "
                "for CPU."
            )
        else:
            text += f"it added {number(loaded['server_added'].get('p50_ms'))} ms at the median."
    holdable = latency.get("loaded_holdable") or {}
    if holdable.get("server_added", {}).get("n"):
        added = holdable["server_added"]
        text += (
            f" The same 200 in flight at {number(holdable.get('model_latency_s'))} s "
            f"({number(holdable.get('executions_per_s_needed'))} executions a second, the "
            f"service using {number(holdable.get('service_cores_used'), 2)} cores, the machine "
            f"busy {number(holdable.get('machine_cores_busy'), 2)} of {cpus}): "
            f"{number(added.get('p50_ms'))} ms added at the median, {number(added.get('p99_ms'))} "
            "ms at p99."
        )
    return text


def api_bullet(submit: Scenario, listing: Scenario, pai: Scenario) -> str:
    parts = ["- **API**: "]
    api = submit.get("api")
    if api:
        parts.append(
            f"{number(api.get('server_cpu_ms_per_post'))} ms of CPU per "
            f"`POST …/agentic-executions/` in the API process alone, "
            f"{submit.get('concurrency')} at a time ({number(api.get('throughput_per_s'), 0)} a "
            "second with everything else on the machine"
        )
        structured = pai.get("types.structured-task.service.cpu_ms_per_execution.api")
        if structured is not None:
            parts.append(
                f"; the `pydantic_ai` scenario, 20 at a time, measures {number(structured)} ms"
            )
        parts.append("). ")
    else:
        parts.append(f"CPU per POST {NOT_MEASURED}. ")
    cases = listing.get("cases") or {}
    if cases:
        p50 = [c["p50_ms"] for c in cases.values() if "p50_ms" in c]
        p99 = [c["p99_ms"] for c in cases.values() if "p99_ms" in c]
        parts.append(
            f"A list page answers in {number(min(p50))}{DASH}{number(max(p50))} ms at the median "
            "with "
            f"{number(listing.get('load.rows'))} executions in the table (deep pages the slower: "
            f"`page` means skipping rows); the worst case's p99 is {number(max(p99))} ms."
        )
    else:
        parts.append(f"List pages {NOT_MEASURED}.")
    return "".join(parts).rstrip()
