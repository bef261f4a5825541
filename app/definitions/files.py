"""Tools that let the agent read the files uploaded with its execution.

Text comes out of PDF (pypdf), CSV, JSON, Markdown and plain text; images go to the model as
images (for vision-capable models). Reading happens in a thread so the event loop keeps
serving the other executions of the worker.
"""

import asyncio
import contextlib
import json
from pathlib import Path

from pydantic_ai import BinaryContent, RunContext, Tool
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from app.definitions.run import AttachedFile, ExecutionRun

# Enough for a product sheet or a price list; longer files are read page by page (``offset``).
MAX_CHARS_PER_READ = 20_000


def extract_text(path: Path, content_type: str) -> str:
    """The text of a stored upload. NUL characters are dropped: PostgreSQL rejects them."""
    if content_type == "application/pdf":
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
        text = "\n\n".join(f"[page {n}]\n{page}" for n, page in enumerate(pages, 1))
    else:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
        if content_type == "application/json":
            # Re-indented so that the model sees the structure even of a minified file.
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return text.replace("\x00", "")


async def list_files(ctx: RunContext[ExecutionRun]) -> list[dict[str, object]]:
    """List the files uploaded with this execution (name, content type, size in bytes)."""
    return [
        {"filename": f.filename, "content_type": f.content_type, "size": f.size}
        for f in ctx.deps.files
    ]


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
        data = await asyncio.to_thread(path.read_bytes)
        return BinaryContent(data=data, media_type=attached.content_type)
    try:
        text = await asyncio.to_thread(extract_text, path, attached.content_type)
    except (OSError, PyPdfError) as exc:
        return f"Could not read {filename!r}: {exc}"
    return _slice(attached, text, max(offset, 0))


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
