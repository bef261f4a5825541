from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import Invalid
from app.events.listener import EventListener
from app.events.repository import last_sequence
from app.events.stream import STREAM_HEADERS, EventStream, last_event_id_of
from app.executions.dependencies import ExecutionRequestDep

router = APIRouter(tags=["agentic executions"])


# Keeps a gateway from buffering the stream; no compression is applied to it either.
@router.get(
    "/agentic-executions/{execution_id}/events/",
    summary="Follow an execution's events",
    description=(
        "Server-Sent Events (`text/event-stream`): the execution's event log, then its new "
        "events as they happen. `event: status` carries the execution as "
        "`GET /api/agentic-executions/{id}/` shows it, for every status it enters (`pending` "
        "first); `event: trace` each trace entry as the conversation's `messages` show it "
        "(model requests and responses, tool calls and results, validator retries). Each "
        "event's `id` is its sequence number within the execution (1, 2, 3, …): reconnect "
        "with `Last-Event-ID` to receive exactly the events after it. A comment every 15 s "
        "keeps the connection alive. The stream ends after the terminal status."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        400: {"description": "`Last-Event-ID` is not an event id."},
        404: {"description": "No such execution, or not yours."},
    },
)
async def stream_events(
    caller: ExecutionRequestDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    after = last_event_id_of(last_event_id)
    if after > await last_sequence(session, caller.execution.id):
        # Never sent: following it would wait for events that never come.
        raise Invalid({"Last-Event-ID": [f"No event {after} in this execution's stream."]})
    # The request's session ends when this function returns (SessionDep): the stream reads
    # the log with sessions of its own, holding no connection while it waits.
    listener: EventListener = request.app.state.event_listener
    stream = EventStream(
        request.app.state.sessionmaker,
        listener,
        caller.execution,
        after=after,
        root_path=request.scope.get("root_path", ""),
        keep_alive_seconds=settings.event_stream_keep_alive_seconds,
    )
    return StreamingResponse(aiter(stream), media_type="text/event-stream", headers=STREAM_HEADERS)
