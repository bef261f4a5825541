"""``agentrun schedules create|list|pause|resume|delete``: schedules over the API
(app/schedules), as any client sends them."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.remote import RemoteError, _checked, _client, _connection_options

# Widths are the least a column takes: a longer cron expression or time zone is shown whole.
ROW = "{:>5}  {:>5}  {:<20}  {:<15}  {:<16}  {:<7}  {:<18}  {}"


def _json_object(option: str, text: str) -> dict[str, Any]:
    """``text`` as a JSON object; ``@path`` reads it from a file."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise RemoteError(f"{option}: {path}: no such file")
        text = path.read_text()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise RemoteError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RemoteError(f"{option} must be a JSON object")
    return value


def _summary(schedule: dict[str, Any]) -> str:
    state = "enabled" if schedule["enabled"] else "paused"
    if schedule["paused_reason"]:
        state += f" ({schedule['paused_reason']})"
    return (
        f"schedule {schedule['id']}: {schedule['cron']} {schedule['timezone']} "
        f"({schedule['cron_description']}), {state}, next run {schedule['next_run_at'] or '-'}"
    )


def create(args: argparse.Namespace) -> None:
    body: dict[str, Any] = {
        "execution_key": args.key,
        "input": _json_object("--input", args.input),
        "cron": args.cron,
        "timezone": args.timezone,
        "enabled": not args.disabled,
    }
    if args.end_at is not None:
        body["end_at"] = args.end_at
    if args.limits is not None:
        body["limits"] = _json_object("--limits", args.limits)
    headers = {} if args.idempotency_key is None else {"Idempotency-Key": args.idempotency_key}
    with _client(args) as client:
        path = f"/api/agents/{args.agent_id}/agentic-execution-schedules/"
        schedule = _checked(client.post(path, json=body, headers=headers))
    print(f"created {_summary(schedule)}", file=sys.stderr)
    print(json.dumps(schedule, indent=2))


def _short(moment: str | None) -> str:
    """``2026-12-08T02:00:00.000000Z`` as ``2026-12-08 02:00Z``."""
    return "-" if moment is None else f"{moment[:10]} {moment[11:16]}Z"


def list_schedules(args: argparse.Namespace) -> None:
    params = {} if args.page is None else {"page": args.page}
    with _client(args) as client:
        page = _checked(client.get("/api/agentic-execution-schedules/", params=params))
    print(ROW.format("ID", "AGENT", "KEY", "CRON", "TZ", "ENABLED", "NEXT RUN", "LAST RUN"))
    for s in page["results"]:
        print(
            ROW.format(
                s["id"],
                s["agent"],
                s["execution_key"][:20],
                s["cron"],
                s["timezone"],
                "yes" if s["enabled"] else "no",
                _short(s["next_run_at"]),
                _short(s["last_run_at"]),
            )
        )
    shown = len(page["results"])
    print(
        f"{shown} of {page['count']}" + (" (more: --page)" if page["next"] else ""), file=sys.stderr
    )


def _set_enabled(args: argparse.Namespace, enabled: bool) -> None:
    with _client(args) as client:
        schedule = _checked(
            client.patch(
                f"/api/agentic-execution-schedules/{args.schedule_id}/", json={"enabled": enabled}
            )
        )
    print(_summary(schedule))


def pause(args: argparse.Namespace) -> None:
    _set_enabled(args, False)


def resume(args: argparse.Namespace) -> None:
    """From the next tick after now: the ticks missed while paused are not run."""
    _set_enabled(args, True)


def delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        response = client.delete(f"/api/agentic-execution-schedules/{args.schedule_id}/")
    if response.is_error:
        raise RemoteError(f"HTTP {response.status_code}: {response.text}")
    print(f"deleted schedule {args.schedule_id}")


def add_schedule_commands(commands: Any) -> None:
    """Register ``schedules`` on the CLI's sub-command parser."""
    schedules = commands.add_parser(
        "schedules", help="recurring executions over the API"
    ).add_subparsers(dest="schedules_command", required=True, metavar="ACTION")
    creating = schedules.add_parser(
        "create", help="start an execution of an agent at every tick of a cron expression"
    )
    creating.add_argument("agent_id", type=int)
    creating.add_argument("--key", required=True, help="the execution key, e.g. structured-task")
    creating.add_argument(
        "--input", default="{}", help="the input, as a JSON object or @file holding one"
    )
    creating.add_argument("--cron", required=True, help="e.g. '0 2 * * *' or @daily")
    creating.add_argument("--timezone", default="UTC", help="an IANA time zone (default UTC)")
    creating.add_argument(
        "--end-at", help="no tick at or after this time (ISO 8601 with an offset)"
    )
    creating.add_argument(
        "--limits", help="usage limits of each execution, as a JSON object or @file"
    )
    creating.add_argument("--disabled", action="store_true", help="create it paused")
    creating.add_argument(
        "--idempotency-key", help="makes a repeat (a retried command) answer the first schedule"
    )
    _connection_options(creating)
    creating.set_defaults(remote=create)

    listing = schedules.add_parser("list", help="a table of schedules, newest first")
    listing.add_argument("--page", type=int)
    _connection_options(listing)
    listing.set_defaults(remote=list_schedules)

    for name, action, description in (
        ("pause", pause, "pause a schedule: no tick until it is resumed"),
        ("resume", resume, "resume a schedule from its next tick after now"),
        ("delete", delete, "delete a schedule (the executions it started stay)"),
    ):
        parser = schedules.add_parser(name, help=description)
        parser.add_argument("schedule_id", type=int)
        _connection_options(parser)
        parser.set_defaults(remote=action)
