"""``agentrun run`` and ``agentrun executions list``: the API's client side, for daily use.

They talk to a running service over HTTP (``--url``/AGENTRUN_URL, ``--token``/AGENTRUN_TOKEN),
exactly as any other client would.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL = ("finished", "failed")
POLL_SECONDS = 0.5


class RemoteError(Exception):
    """An answer from the service that ends the command (printed, exit code 1)."""


def _client(args: argparse.Namespace) -> httpx.Client:
    if not args.token:
        raise RemoteError("a token is needed: --token or AGENTRUN_TOKEN")
    return httpx.Client(
        base_url=args.url.rstrip("/"),
        headers={"Authorization": f"Token {args.token}"},
        timeout=30,
    )


def _checked(response: httpx.Response) -> Any:
    if response.is_error:
        raise RemoteError(f"HTTP {response.status_code}: {response.text}")
    return response.json()


def _start(client: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    try:
        given = json.loads(args.input)
    except ValueError as exc:
        raise RemoteError(f"--input is not valid JSON: {exc}") from None
    path = f"/api/agents/{args.agent_id}/agentic-executions/"
    if not args.file:
        return _checked(client.post(path, json={"execution_key": args.key, "input": given}))  # type: ignore[no-any-return]
    files = [("files[]", (Path(name).name, Path(name).read_bytes())) for name in args.file]
    form = {"execution_key": args.key, "input": json.dumps(given)}
    return _checked(client.post(path, data=form, files=files))  # type: ignore[no-any-return]


def _model_calls(client: httpx.Client, conversation_id: int) -> int:
    # The first trace entry of each model response names the model that answered.
    conversation = _checked(client.get(f"/api/conversations/{conversation_id}/"))
    return sum(1 for m in conversation["messages"] if "model_name" in (m["payload"] or {}))


def _wait(client: httpx.Client, execution: dict[str, Any], timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    interactive = sys.stderr.isatty()
    while execution["status"] not in TERMINAL:
        if time.monotonic() - started > timeout:
            raise RemoteError(f"still {execution['status']} after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
        execution = _checked(client.get(f"/api/agentic-executions/{execution['id']}/"))
        calls = _model_calls(client, execution["conversation"])
        line = (
            f"#{execution['id']} {execution['status']:<11} "
            f"{time.monotonic() - started:6.1f} s  {calls} model call{'s' * (calls != 1)}"
        )
        print(f"\r{line}" if interactive else line, end="" if interactive else "\n",
              file=sys.stderr)  # fmt: skip
    if interactive:
        print(file=sys.stderr)
    return execution


def run(args: argparse.Namespace) -> None:
    with _client(args) as client:
        execution = _start(client, args)
        print(f"started execution {execution['id']}", file=sys.stderr)
        if not args.wait:
            print(json.dumps(execution, indent=2))
            return
        execution = _wait(client, execution, args.timeout)
    if execution["status"] == "finished":
        print(json.dumps(execution["result"], indent=2))
        return
    raise RemoteError(f"{execution['failure_code']}: {execution['failure_explanation']}")


def list_executions(args: argparse.Namespace) -> None:
    params = {
        name: value
        for name, value in (
            ("agent_id", args.agent_id),
            ("status", args.status),
            ("dataset_id", args.dataset_id),
            ("page", args.page),
        )
        if value is not None
    }
    with _client(args) as client:
        page = _checked(client.get("/api/agentic-executions/", params=params))
    row = "{:>7}  {:>5}  {:<20}  {:<11}  {:<19}  {:>8}  {}"
    print(row.format("ID", "AGENT", "KEY", "STATUS", "STARTED", "SECONDS", "FAILURE"))
    for e in page["results"]:
        seconds = "-" if e["duration_seconds"] is None else f"{e['duration_seconds']:.1f}"
        print(
            row.format(
                e["id"],
                e["agent"],
                e["execution_key"][:20],
                e["status"],
                e["started_at"][:19],
                seconds,
                e["failure_code"] or "",
            )
        )
    shown = len(page["results"])
    print(
        f"{shown} of {page['count']}" + (" (more: --page)" if page["next"] else ""), file=sys.stderr
    )


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("AGENTRUN_URL", "http://127.0.0.1:8000"),
        help="the service's base URL (AGENTRUN_URL)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("AGENTRUN_TOKEN"), help="API token (AGENTRUN_TOKEN)"
    )


def add_remote_commands(commands: Any) -> None:
    """Register ``run`` and ``executions`` on the CLI's sub-command parser."""
    run_parser = commands.add_parser(
        "run", help="start an execution over the API (--wait: and follow it)"
    )
    run_parser.add_argument("agent_id", type=int)
    run_parser.add_argument("key", help="the execution key, e.g. catalog-enrichment")
    run_parser.add_argument("--input", default="{}", help="the input, as a JSON object")
    run_parser.add_argument("--file", action="append", help="a file to attach (repeatable)")
    run_parser.add_argument(
        "--wait", action="store_true", help="follow it to the end, then print the result"
    )
    run_parser.add_argument("--timeout", type=float, default=900, help="seconds --wait waits")
    _connection_options(run_parser)
    run_parser.set_defaults(remote=run)

    executions = commands.add_parser("executions", help="executions over the API").add_subparsers(
        dest="executions_command", required=True, metavar="ACTION"
    )
    listing = executions.add_parser("list", help="a table of executions, newest first")
    listing.add_argument("--agent-id", type=int)
    listing.add_argument("--status", choices=["pending", "in_progress", "finished", "failed"])
    listing.add_argument("--dataset-id", type=int)
    listing.add_argument("--page", type=int)
    _connection_options(listing)
    listing.set_defaults(remote=list_executions)


def run_remote(args: argparse.Namespace) -> None:
    try:
        args.remote(args)
    except RemoteError as exc:
        print(f"agentrun: {exc}", file=sys.stderr)
        sys.exit(1)
    except (httpx.HTTPError, OSError) as exc:
        print(f"agentrun: cannot reach {args.url}: {exc}", file=sys.stderr)
        sys.exit(1)
