"""6. protocols: the latency A2A and MCP add to the same execution submitted over REST.

One client at a time (latency, not throughput), model latency 0, N rounds (100; quick 30), each
round the same execution three ways, in turn so that drift hits all three alike:

- REST: ``POST /api/agents/{id}/agentic-executions/``, then polled until terminal (the
  harness's growing poll, 10 ms first);
- A2A: a blocking ``SendMessage`` with the A2A SDK's client (JSON-RPC), answered at the end;
- MCP: ``tools/call`` with the MCP SDK's client, answered at the end.

Also the submission alone: the REST POST against an A2A send with ``return_immediately``.
The protocols follow an execution on its event log, woken by the API's LISTEN/NOTIFY listener
when its status events commit (app/protocols/executions.py), where the REST client polls.
Reported, no target.
"""

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import httpx2
from a2a.client import Client as A2AClient
from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import (
    Message,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)
from mcp import Client as McpClient
from mcp.client.streamable_http import streamable_http_client

from app.executions.a2a_task import data_part
from bench.context import BenchRun
from bench.driver import EXECUTION_BODY, latency_ms, submit, submit_and_wait
from bench.scenarios import Result

EXECUTION_TIME_LIMIT = 30.0


def _message(return_immediately: bool) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[data_part(EXECUTION_BODY)]
        ),
        configuration=SendMessageConfiguration(return_immediately=return_immediately),
    )


async def _a2a_send(client: A2AClient, return_immediately: bool) -> str:
    responses = [r async for r in client.send_message(_message(return_immediately))]
    return TaskState.Name(responses[-1].task.status.state)


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    outcome = await call()
    return time.perf_counter() - started, outcome


async def run(bench: BenchRun) -> Result:
    assert bench.model is not None
    assert bench.api is not None
    rounds = bench.sizes.protocol_rounds
    await bench.model.configure(latency=0, reset=True)
    headers = {"Authorization": f"Token {bench.admin_token}"}
    times: dict[str, list[float]] = {
        "rest_submit": [],
        "a2a_submit": [],
        "rest_end_to_end": [],
        "a2a_end_to_end": [],
        "mcp_end_to_end": [],
    }
    outcomes: dict[str, dict[str, int]] = {name: {} for name in times}
    tool = f"agent_{bench.agent_id}__{EXECUTION_BODY['execution_key']}"
    async with (
        bench.worker(),
        bench.client(bench.admin_token) as rest,
        httpx.AsyncClient(headers=headers, timeout=60) as a2a_http,
        httpx2.AsyncClient(headers=headers, timeout=60) as mcp_http,
    ):
        await bench.warm_up(5)
        a2a = await create_client(
            f"{bench.api.url}/a2a/{bench.agent_id}",
            ClientConfig(httpx_client=a2a_http, streaming=False),
        )
        transport = streamable_http_client(f"{bench.api.url}/mcp", http_client=mcp_http)
        async with McpClient(transport) as mcp:
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "rest_submit": lambda: submit(rest, bench.agent_id),
                "a2a_submit": lambda: _a2a_send(a2a, True),
                "rest_end_to_end": lambda: submit_and_wait(
                    rest, bench.agent_id, EXECUTION_TIME_LIMIT
                ),
                "a2a_end_to_end": lambda: _a2a_send(a2a, False),
                "mcp_end_to_end": lambda: mcp.call_tool(tool, EXECUTION_BODY["input"]),
            }
            for call in calls.values():  # one of each first: connections, imports
                await call()
            for _ in range(rounds):
                for name, call in calls.items():
                    seconds, outcome = await _timed(call)
                    times[name].append(seconds)
                    label = _label(outcome)
                    outcomes[name][label] = outcomes[name].get(label, 0) + 1
        await a2a.close()
        await bench.discard_open_executions()

    figures: dict[str, Any] = {"rounds": rounds}
    figures.update({name: latency_ms(seconds) for name, seconds in times.items()})
    figures["outcomes"] = outcomes
    medians = {name: figures[name]["p50_ms"] for name in times}
    figures["added_p50_ms"] = {
        "a2a_submit": round(medians["a2a_submit"] - medians["rest_submit"], 2),
        "a2a_end_to_end": round(medians["a2a_end_to_end"] - medians["rest_end_to_end"], 2),
        "mcp_end_to_end": round(medians["mcp_end_to_end"] - medians["rest_end_to_end"], 2),
    }
    return Result(
        figures=figures,
        ratio=None,
        target="reported: the latency A2A and MCP add to the same REST submission",
        met=None,
        notes=[
            "end to end, the protocols are woken by the execution's status events "
            "(LISTEN/NOTIFY); the REST client polls (10 ms first, growing up to 0.1 s)"
        ],
    )


def _label(outcome: Any) -> str:
    if hasattr(outcome, "status_code") and hasattr(outcome, "body"):
        body = outcome.body
        return str(body.get("status") if isinstance(body, dict) else outcome.status_code)
    if hasattr(outcome, "is_error"):
        return "error" if outcome.is_error else "finished"
    return str(outcome)
