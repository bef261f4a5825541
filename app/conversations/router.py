from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from app.auth.dependencies import CurrentUser
from app.conversations import service
from app.conversations.models import ConversationFile
from app.conversations.schemas import ConversationOut, FileOut, MessageOut
from app.conversations.storage import media_path
from app.core.dependencies import SessionDep, SettingsDep
from app.core.ids import RowId

router = APIRouter(tags=["conversations"])
media_router = APIRouter(tags=["media"])


def file_out(file: ConversationFile, root_path: str = "") -> FileOut:
    return FileOut(
        id=file.id,
        filename=file.filename,
        file_url=f"{root_path}/media/{file.storage_key}",
        content_type=file.content_type,
    )


@router.get(
    "/conversations/{conversation_id}/",
    summary="Read a conversation and its messages",
    description=(
        "An execution's conversation holds the whole trace of its agent loop: model requests "
        "and responses, tool calls and results, validator feedback, in order. Read-only."
    ),
    responses={404: {"description": "No such conversation, or not yours."}},
)
async def read_conversation(
    conversation_id: RowId, request: Request, session: SessionDep, user: CurrentUser
) -> ConversationOut:
    conversation = await service.get_visible_conversation(session, user, conversation_id)
    messages = await service.list_messages(session, conversation.id)
    files = await service.list_files(session, conversation.id)
    return ConversationOut(
        id=conversation.id,
        agent=conversation.agent_id,
        user=conversation.user_id,
        locked=conversation.locked,
        created_at=conversation.created_at,
        messages=[MessageOut.model_validate(m, from_attributes=True) for m in messages],
        files=[file_out(f, request.scope.get("root_path", "")) for f in files],
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
