"""Tools that let the agent read the files uploaded with its execution.

Text was extracted at upload (app/conversations/extraction_process.py) and is read from the
file's row; images go to the model as images (for vision-capable models). A file stored before
extraction at upload is extracted on its first read, within the same limits, and kept.
"""

import asyncio

from pydantic_ai import BinaryContent, RunContext, Tool
from sqlalchemy import select, update

from app.conversations.extraction import Extracted
from app.conversations.models import ConversationFile
from app.definitions.effects import read_only
from app.definitions.run import AttachedFile, ExecutionRun

# Enough for a product sheet or a price list; longer files are read page by page (``offset``).
MAX_CHARS_PER_READ = 20_000


@read_only
async def list_files(ctx: RunContext[ExecutionRun]) -> list[dict[str, object]]:
    """List the files uploaded with this execution (name, content type, size in bytes)."""
    return [
        {"filename": f.filename, "content_type": f.content_type, "size": f.size}
        for f in ctx.deps.files
    ]


@read_only
async def read_file(
    ctx: RunContext[ExecutionRun], filename: str, offset: int = 0
) -> str | BinaryContent:
    """Read one uploaded file: its text (PDF, CSV, JSON, Markdown, plain text) or the image.

    Long texts come in slices of 20000 characters; the answer says which `offset` reads on.

    Args:
        filename: The file's name exactly as `list_files` gives it.
        offset: Character offset to start reading at, for long files.
    """
    attached = ctx.deps.file_named(filename)
    if attached is None:
        names = ", ".join(f.filename for f in ctx.deps.files) or "none"
        return f"No file named {filename!r}. Files of this execution: {names}."
    path = ctx.deps.media_root / attached.storage_key
    if attached.content_type.startswith("image/"):
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            return f"Could not read {filename!r}: {exc}"
        return BinaryContent(data=data, media_type=attached.content_type)
    extracted = await _stored_text(ctx.deps, attached)
    if extracted.text is None and extracted.error is None:
        extractor = ctx.deps.text_extractor
        if extractor is None:
            return f"Could not read {filename!r}: its text was not extracted."
        try:
            extracted = await extractor.extract(path, attached.content_type, ctx.deps.user_id)
        except OSError as exc:
            return f"Could not read {filename!r}: {exc}"
        await _keep_text(ctx.deps, attached, extracted)
    if extracted.error is not None:
        return f"Could not extract text from {filename!r}: {extracted.error}."
    return _slice(attached, extracted.text or "", max(offset, 0))


async def _stored_text(run: ExecutionRun, attached: AttachedFile) -> Extracted:
    query = select(ConversationFile.extracted_text, ConversationFile.extraction_error).where(
        ConversationFile.storage_key == attached.storage_key
    )
    async with run.session() as session:
        row = (await session.execute(query)).first()
    return Extracted() if row is None else Extracted(text=row[0], error=row[1])


async def _keep_text(run: ExecutionRun, attached: AttachedFile, extracted: Extracted) -> None:
    async with run.session() as session:
        await session.execute(
            update(ConversationFile)
            .where(
                ConversationFile.storage_key == attached.storage_key,
                ConversationFile.extracted_text.is_(None),
                ConversationFile.extraction_error.is_(None),
            )
            .values(extracted_text=extracted.text, extraction_error=extracted.error),
            execution_options={"synchronize_session": False},
        )


def _slice(attached: AttachedFile, text: str, offset: int) -> str:
    part = text[offset : offset + MAX_CHARS_PER_READ]
    end = offset + len(part)
    if end < len(text):
        return f"{part}\n\n[characters {offset}-{end} of {len(text)}; read on with offset={end}]"
    if offset:
        return f"{part}\n\n[end of {attached.filename}]"
    return part


FILE_TOOLS: tuple[Tool[ExecutionRun], ...] = (
    Tool(list_files, takes_ctx=True),
    Tool(read_file, takes_ctx=True),
)
