"""``python -m bench``: the performance benchmark (see bench/README.md).

python -m bench                     # every scenario, full size
python -m bench --quick             # smaller runs, a few minutes
python -m bench --only list,submit  # some scenarios
python -m bench --profile           # also sample the API and worker with py-spy
python -m bench --compare A.json B.json
python -m bench --sizing-from bench/results/A.json  # docs/sizing.md's block from a run
"""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import report, sizing
from bench.context import FULL, QUICK, BenchRun
from bench.profiling import Profiler
from bench.scenarios import (
    Result,
    batches,
    concurrency,
    fairness,
    fleet,
    journal,
    latency,
    listing,
    memory,
    overhead,
    protocols,
    pydantic_ai,
    schedules,
    streams,
    submit,
)
from bench.stack import REDIS_URL, ROOT, Stack

RESULTS = Path(__file__).resolve().parent / "results"

# In this order: the list scenario's million rows come late, so they slow nothing else.
SCENARIOS: dict[str, Callable[[BenchRun], Awaitable[Result]]] = {
    "latency": latency.run,
    "pydantic_ai": pydantic_ai.run,
    "overhead": overhead.run,
    "concurrency": concurrency.run,
    "memory": memory.run,
    "fleet": fleet.run,
    "streams": streams.run,
    "submit": submit.run,
    "protocols": protocols.run,
    "batches": batches.run,
    "schedules": schedules.run,
    "journal": journal.run,
    "list": listing.run,
    "fairness": fairness.run,
}


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return done.stdout.strip()


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _write_sizing(path: Path) -> None:
    document = json.loads(path.read_text())
    try:
        source = str(path.resolve().relative_to(ROOT))
    except ValueError:
        source = str(path)
    sizing.write_page(sizing.render(document, source))
    print(f"docs/sizing.md: sizing section written from {source}")


def _meta(quick: bool, stack: Stack, names: list[str]) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "scenarios": names,
        "sizes": dataclasses.asdict(sizes),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": len(_git("status", "--porcelain").splitlines()),
        "cpus": os.cpu_count(),
        # Load before the run: other work on the machine skews wall times (see cpu_s.others).
        "load_average": _load(),
        "python": platform.python_version(),
        "database": stack.database,
        "redis": REDIS_URL,
        "queue": stack.queue_name,
        "work_dir": str(stack.work_dir),
    }


async def _run(bench: BenchRun, names: list[str], document: dict[str, Any], path: Path) -> None:
    # SIGTERM stops the run as Ctrl-C does: the task is cancelled and the finally below runs.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await bench.set_up()
        document["meta"]["setup_seconds"] = bench.facts["setup_seconds"]
        for name in names:
            print(f"\n>>> {name}", flush=True)
            started = time.perf_counter()
            load_start = _load()
            try:
                result = await SCENARIOS[name](bench)
            except Exception as exc:
                traceback.print_exc()
                bench.profiler.stop()
                document["scenarios"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            else:
                seconds = time.perf_counter() - started
                report.print_result(name, result, seconds)
                document["scenarios"][name] = {
                    **result.as_json(),
                    "seconds": round(seconds, 1),
                    # Each figure with the machine's load while it was measured.
                    "load_average": {"start": load_start, "end": _load()},
                }
            report.write_json(path, document)
            await bench.discard_open_executions()
    finally:
        bench.profiler.stop()
        await bench.close()
        await bench.stack.close()


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a few minutes)")
    parser.add_argument("--only", help=f"comma-separated scenarios of: {', '.join(SCENARIOS)}")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and worker")
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="leave the scratch database for inspection (its name is printed; drop it yourself)",
    )
    parser.add_argument("--compare", nargs=2, metavar="JSON", type=Path)
    parser.add_argument(
        "--sizing-from",
        metavar="JSON",
        type=Path,
        help="rewrite docs/sizing.md's generated block from an earlier run's results, and stop",
    )
    parser.add_argument(
        "--write-sizing",
        action="store_true",
        help="rewrite docs/sizing.md's generated block at the end of a quick or partial run too "
        "(a full run without --profile always does)",
    )
    args = parser.parse_args()
    if args.compare:
        report.compare(*args.compare)
        return
    if args.sizing_from:
        _write_sizing(args.sizing_from)
        return
    names = list(SCENARIOS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )

    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = RESULTS / f"{stamp}-work"
    work_dir.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stamp}.json"
    stack = Stack(work_dir, keep_database=args.keep_database)
    bench = BenchRun(stack, QUICK if args.quick else FULL, Profiler(work_dir, args.profile))
    document: dict[str, Any] = {"meta": _meta(args.quick, stack, names), "scenarios": {}}
    print(
        f"agentrun bench ({'quick' if args.quick else 'full'}): {', '.join(names)}; "
        f"{os.cpu_count()} CPUs; database {stack.database}; logs in {work_dir}",
        flush=True,
    )
    started = time.perf_counter()
    interrupted = False
    try:
        with _runner() as runner:
            runner.run(_run(bench, names, document, path))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        print("\ninterrupted: stopping the processes and dropping the database", file=sys.stderr)
    finally:
        # Whatever happened inside the loop: no process and no database is left behind.
        stack.stop_all()
        with contextlib.suppress(Exception):
            asyncio.run(stack.drop_database())
    document["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    document["meta"]["load_average_after"] = _load()
    document["meta"]["interrupted"] = interrupted
    report.write_json(path, document)
    if document["scenarios"]:
        report.print_summary(document["scenarios"])
    print(f"\nresults: {path}  (total {document['meta']['total_seconds']}s)")
    if interrupted:
        sys.exit(130)
    # Only a full run speaks for the docs unless asked (py-spy slows what it samples).
    full = not args.quick and not args.only and not args.profile
    if full or args.write_sizing:
        _write_sizing(path)


if __name__ == "__main__":
    main()
