from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from app.agents.models import Agent
from app.auth.dependencies import CurrentUser
from app.conversations import service
from app.conversations.schemas import MessageOut, file_out
from app.conversations.storage import media_path
from app.conversations_api import history
from app.conversations_api.schemas import (
    ConversationOut,
    ConversationPage,
    ConversationSummaryOut,
    conversation_agent_out,
)
from app.core.dependencies import SessionDep, SettingsDep
from app.core.errors import Invalid, NotFound
from app.core.ids import RowId
from app.core.query import EMPTY_IS_NONE, previous_page_url

router = APIRouter(tags=["conversations"])
media_router = APIRouter(tags=["media"])


@router.get(
    "/conversations/{conversation_id}/",
    summary="Read a conversation and its messages",
    description=(
        "Enthusiast's shape (`history`, `agent`, `is_execution_conversation`), and beside it "
        "the whole trace of an execution's agent loop in `messages`: model requests and "
        "responses, tool calls and results, validator feedback, in order. Read-only."
    ),
    responses={404: {"description": "No such conversation, or not yours."}},
)
async def read_conversation(
    conversation_id: RowId, request: Request, session: SessionDep, user: CurrentUser
) -> ConversationOut:
    conversation = await service.get_visible_conversation(session, user, conversation_id)
    agent = await session.get(Agent, conversation.agent_id)
    assert agent is not None  # agents are only soft deleted
    messages = await service.list_messages(session, conversation.id)
    files = await service.list_files(session, conversation.id)
    return ConversationOut(
        id=conversation.id,
        started_at=conversation.created_at,
        summary=None,
        history=history.history(messages),
        agent=conversation_agent_out(agent),
        is_execution_conversation=await history.is_execution_conversation(session, conversation.id),
        user=conversation.user_id,
        locked=conversation.locked,
        created_at=conversation.created_at,
        messages=[MessageOut.model_validate(m, from_attributes=True) for m in messages],
        files=[file_out(f, request.scope.get("root_path", "")) for f in files],
    )


@router.post(
    "/conversations/{conversation_id}/",
    summary="Send a message (refused: conversations here are read-only)",
    description="Enthusiast's chat endpoint. This service runs executions only, and an "
    "execution's conversation is locked: always 400 `Conversation locked.` (404 if not yours).",
    status_code=400,
    responses={
        400: {
            "description": "The conversation accepts no messages.",
            "content": {"application/json": {"example": {"detail": "Conversation locked."}}},
        },
        404: {"description": "No such conversation, or not yours."},
    },
)
async def post_to_conversation(
    conversation_id: int, session: SessionDep, user: CurrentUser
) -> None:
    await service.get_visible_conversation(session, user, conversation_id)
    raise Invalid("Conversation locked.")


def _page_number(raw: str) -> int:
    # ASCII digits only ("²".isdigit() is true), and a bounded length.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


@router.get(
    "/conversations/",
    summary="List chats",
    description="Enthusiast's chat list: your conversations that are no execution's, newest "
    "first, 25 a page (`?page=last` too). This service starts no chats, so it is usually "
    "empty; an execution's conversation is read at its own id.",
    responses={404: {"description": "Invalid page."}},
)
async def list_conversations(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    data_set_id: Annotated[int | None, EMPTY_IS_NONE, Query()] = None,
    agent_id: Annotated[int | None, EMPTY_IS_NONE, Query()] = None,
    page: Annotated[str | None, Query(description="Page number, from 1, or `last`.")] = None,
) -> ConversationPage:
    filters = history.ConversationFilters(data_set_id=data_set_id, agent_id=agent_id)
    size = settings.page_size
    total = await history.count_chats(session, user, filters)
    pages = max(1, -(-total // size))
    number = pages if page == "last" else 1 if page is None else _page_number(page)
    if not 1 <= number <= pages:
        raise NotFound("Invalid page.")
    rows = await history.list_chats(session, user, filters, offset=(number - 1) * size, limit=size)
    previous = previous_page_url(request, number)
    return ConversationPage(
        count=total,
        next=str(request.url.include_query_params(page=number + 1)) if number < pages else None,
        previous=previous,
        results=[
            ConversationSummaryOut(
                id=conversation.id,
                started_at=conversation.created_at,
                summary=None,
                agent=conversation_agent_out(agent),
            )
            for conversation, agent in rows
        ],
    )


@media_router.get(
    "/media/conversations/{conversation_id}/{filename}",
    summary="Download an uploaded file",
    description="Served only to users who may read the conversation; always as a download.",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        404: {"description": "No such file, or not yours."},
    },
)
async def download_file(
    conversation_id: RowId,
    filename: str,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> FileResponse:
    storage_key = f"conversations/{conversation_id}/{filename}"
    file = await service.get_visible_file(session, user, storage_key)
    return FileResponse(
        media_path(settings.media_root, file.storage_key),
        media_type=file.content_type,
        filename=file.filename,
        content_disposition_type="attachment",
        # Never let a browser guess a type and run what a user uploaded.
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )
