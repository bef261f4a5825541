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


class NoEventStream(Exception):
    """The service has no event stream (an older release): poll instead."""


def _trace_line(entry: dict[str, Any]) -> str | None:
    """A short line for a trace entry worth showing live: model answers, tool calls and
    results, retries."""
    payload = entry.get("payload") or {}
    role = entry["role"]
    if role == "tool_call":
        line = f"tool call {entry['tool_name']}({entry['content']})"
    elif role == "tool_result":
        line = f"tool result {entry['tool_name']}: {entry['content']}"
    elif role == "retry":
        line = f"retry: {entry['content']}"
    elif role == "assistant":
        line = f"says: {entry['content']}"
    elif "model_name" not in payload:
        return None
    else:
        line = role
    if "model_name" in payload:
        # The first entry of a model's answer names the model.
        line = f"model {payload['model_name']} → {line}"
    line = " ".join(line.split())
    return line if len(line) <= 120 else line[:119] + "…"


def _stream_once(client: httpx.Client, execution_id: int, last_event_id: int, on_event: Any) -> int:
    """Read the execution's event stream after ``last_event_id`` until it ends or breaks;
    answers the id of the last event read."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
    # The service sends a comment every 15 s: a longer silence is a broken connection.
    timeout = httpx.Timeout(30, read=60)
    path = f"/api/agentic-executions/{execution_id}/events/"
    with client.stream("GET", path, headers=headers, timeout=timeout) as response:
        content_type = response.headers.get("content-type", "")
        if response.status_code in (404, 405) or (
            response.is_success and not content_type.startswith("text/event-stream")
        ):
            raise NoEventStream
        if response.is_error:
            response.read()
            raise RemoteError(f"HTTP {response.status_code}: {response.text}")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields and "id" in fields:
                last_event_id = int(fields["id"])
                on_event(fields.get("event", "message"), json.loads(fields["data"]))
            fields = {}
    return last_event_id


def _follow(client: httpx.Client, execution: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Follow the execution's event stream to its end, printing its statuses, model calls and
    tool calls as they happen; reconnects (Last-Event-ID) when the connection breaks."""
    started = time.monotonic()
    calls = 0

    def on_event(kind: str, data: dict[str, Any]) -> None:
        nonlocal execution, calls
        elapsed = time.monotonic() - started
        if kind == "status":
            execution = data
            print(
                f"#{data['id']} {data['status']:<11} {elapsed:6.1f} s  "
                f"{calls} model call{'s' * (calls != 1)}",
                file=sys.stderr,
            )
        elif kind == "trace":
            calls += "model_name" in (data.get("payload") or {})
            line = _trace_line(data)
            if line is not None:
                print(f"  {elapsed:6.1f} s  {line}", file=sys.stderr)

    last_event_id = 0
    while True:
        try:
            last_event_id = _stream_once(client, execution["id"], last_event_id, on_event)
        except httpx.TransportError as exc:
            if time.monotonic() - started > timeout:
                raise RemoteError(f"the event stream broke: {exc}") from None
            time.sleep(POLL_SECONDS)
        if execution["status"] in TERMINAL:
            return execution
        if time.monotonic() - started > timeout:
            raise RemoteError(f"still {execution['status']} after {timeout:.0f} s")
        # The stream ended early (the service restarting, say): reconnect in a moment.
        time.sleep(POLL_SECONDS)


def run(args: argparse.Namespace) -> None:
    with _client(args) as client:
        execution = _start(client, args)
        print(f"started execution {execution['id']}", file=sys.stderr)
        if not args.wait:
            print(json.dumps(execution, indent=2))
            return
        try:
            execution = _follow(client, execution, args.timeout)
        except NoEventStream:
            print("the service has no event stream: polling", file=sys.stderr)
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
