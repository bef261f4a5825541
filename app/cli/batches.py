"""``agentrun batch submit|status|cancel|results``: batches over the API (app/batches), as any
client sends them: the items as a JSONL file uploaded from disk, the progress polled, the
results streamed to stdout a chunk at a time."""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.remote import RemoteError, _checked, _client, _connection_options

POLL_SECONDS = 1.0
BAR_WIDTH = 30


def progress_line(batch: dict[str, Any]) -> str:
    """``[#########.........]  57/100  finished 50  failed 7  running 3``."""
    counts = batch["counts"]
    ended = counts["finished"] + counts["failed"]
    total = max(counts["total"], 1)
    filled = BAR_WIDTH * ended // total
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {ended:>6}/{counts['total']}  "
        f"finished {counts['finished']}  failed {counts['failed']}  "
        f"running {counts['in_progress']}"
    )


def _wait(client: Any, batch: dict[str, Any], timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    interactive = sys.stderr.isatty()
    shown = ""
    while True:
        line = progress_line(batch)
        if line != shown:
            print(f"\r{line}" if interactive else line, end="" if interactive else "\n",
                  file=sys.stderr, flush=True)  # fmt: skip
            shown = line
        if batch["status"] == "finished":
            break
        if time.monotonic() - started > timeout:
            raise RemoteError(f"batch {batch['id']} still running after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
        batch = _checked(client.get(f"/api/agentic-execution-batches/{batch['id']}/"))
    if interactive:
        print(file=sys.stderr)
    return batch


def submit(args: argparse.Namespace) -> None:
    path = Path(args.items)
    if not path.is_file():
        raise RemoteError(f"{args.items}: no such file")
    form = {"execution_key": args.key}
    if args.limits is not None:
        form["limits"] = args.limits
    headers = {} if args.idempotency_key is None else {"Idempotency-Key": args.idempotency_key}
    with _client(args) as client, path.open("rb") as items:
        client.timeout = args.timeout
        batch = _checked(
            client.post(
                f"/api/agents/{args.agent_id}/agentic-execution-batches/",
                data=form,
                files={"items": (path.name, items, "application/x-ndjson")},
                headers=headers,
            )
        )
        print(f"submitted batch {batch['id']}: {batch['counts']['total']} items", file=sys.stderr)
        if args.wait:
            batch = _wait(client, batch, args.timeout)
    print(json.dumps(batch, indent=2))


def status(args: argparse.Namespace) -> None:
    with _client(args) as client:
        batch = _checked(client.get(f"/api/agentic-execution-batches/{args.batch_id}/"))
    print(progress_line(batch), file=sys.stderr)
    print(json.dumps(batch, indent=2))


def cancel(args: argparse.Namespace) -> None:
    with _client(args) as client:
        batch = _checked(client.post(f"/api/agentic-execution-batches/{args.batch_id}/cancel/"))
    print(progress_line(batch), file=sys.stderr)
    print(json.dumps(batch, indent=2))


def results(args: argparse.Namespace) -> None:
    """The results as the service streams them (NDJSON), to stdout as they come."""
    with (
        _client(args) as client,
        client.stream("GET", f"/api/agentic-execution-batches/{args.batch_id}/results/") as lines,
    ):
        if lines.is_error:
            lines.read()
            _checked(lines)
        for chunk in lines.iter_bytes():
            sys.stdout.buffer.write(chunk)
    sys.stdout.flush()


def add_batch_commands(commands: Any) -> None:
    """Register ``batch`` on the CLI's sub-command parser."""
    batch = commands.add_parser("batch", help="batches over the API").add_subparsers(
        dest="batch_command", required=True, metavar="ACTION"
    )
    submitting = batch.add_parser(
        "submit", help="submit a JSONL file of items (--wait: follow it with a progress bar)"
    )
    submitting.add_argument("agent_id", type=int)
    submitting.add_argument("key", help="the execution key of every item")
    submitting.add_argument("items", help='a JSONL file: one {"input": {...}} a line')
    submitting.add_argument("--limits", help="usage limits of every item, as a JSON object")
    submitting.add_argument("--idempotency-key", help="makes a repeat answer the first batch")
    submitting.add_argument("--wait", action="store_true", help="follow it to the end")
    submitting.add_argument("--timeout", type=float, default=3600, help="seconds to wait")
    _connection_options(submitting)
    submitting.set_defaults(remote=submit)
    for name, action, description in (
        ("status", status, "a batch's counts"),
        ("cancel", cancel, "cancel a batch's items"),
        ("results", results, "a batch's results as NDJSON, to stdout"),
    ):
        parser = batch.add_parser(name, help=description)
        parser.add_argument("batch_id", type=int)
        _connection_options(parser)
        parser.set_defaults(remote=action)
