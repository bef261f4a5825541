"""The text of an uploaded file, within limits: what the agent's ``read_file`` tool reads.

Runs inside the child process of ``app.conversations.extraction_process`` for the formats whose
parsers can be made to spend unbounded CPU or memory (PDF, JSON); plain text is only decoded.
Limits a parser cannot enforce itself (CPU time, memory, wall time) are the process's.
"""

import json
from dataclasses import dataclass
from io import BytesIO
from typing import Self

from pypdf import PdfReader, apply_configuration
from pypdf.errors import LimitReachedError

from app.core.config import Settings

PDF = "application/pdf"
JSON = "application/json"
# Types whose text is kept; images go to the model as images.
TEXT_TYPES = frozenset({PDF, JSON, "text/plain", "text/markdown", "text/csv"})
# Types parsed in a child process: their parsers' cost is not linear in the upload's size.
PARSED_TYPES = frozenset({PDF, JSON})


@dataclass(frozen=True)
class ExtractionLimits:
    """What one file's extraction may take (AGENTRUN_EXTRACTION_*)."""

    timeout_seconds: float
    cpu_seconds: int
    memory_bytes: int
    max_pages: int
    max_chars: int
    max_decompressed_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            timeout_seconds=settings.extraction_timeout_seconds,
            cpu_seconds=settings.extraction_cpu_seconds,
            memory_bytes=settings.extraction_memory_bytes,
            max_pages=settings.extraction_max_pages,
            max_chars=settings.extraction_max_chars,
            max_decompressed_bytes=settings.extraction_max_decompressed_bytes,
        )


@dataclass(frozen=True)
class Extracted:
    """A file's text, or why there is none (``error`` completes "could not extract text: …").

    Both None: nothing to extract (an image).
    """

    text: str | None = None
    error: str | None = None


class ExtractionFailed(Exception):
    """The file is over a limit or cannot be parsed; the message says which, for the model."""


def extract_text(data: bytes, content_type: str, limits: ExtractionLimits) -> str:
    """The text of an upload, at most ``limits.max_chars`` characters (a note says when cut).

    NUL characters are dropped: PostgreSQL rejects them.
    """
    if content_type == PDF:
        text = _pdf_text(data, limits)
    else:
        text = data.decode("utf-8-sig", errors="replace")
        if content_type == JSON:
            text = _reindented(text)
    text = text.replace("\x00", "")
    if len(text) > limits.max_chars:
        text = (
            f"{text[: limits.max_chars]}\n\n[text cut at {limits.max_chars} characters, "
            "the extraction limit; the rest of the file is not shown]"
        )
    return text


def _reindented(text: str) -> str:
    # Re-indented so that the model sees the structure even of a minified file.
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
    except RecursionError:
        # Valid JSON nested deeper than Python's parser recurses (~1000 levels).
        return f"[JSON nested too deeply to re-indent; shown as uploaded]\n{text}"


def _pdf_text(data: bytes, limits: ExtractionLimits) -> str:
    stream_limit = limits.max_decompressed_bytes
    with apply_configuration(
        zlib_maximum_output_length=stream_limit,
        lzw_maximum_output_length=stream_limit,
        run_length_maximum_output_length=stream_limit,
        brotli_maximum_output_length=stream_limit,
        array_based_stream_maximum_output_length=stream_limit,
        stream_decoding_work_maximum_length=stream_limit,
    ):
        try:
            reader = PdfReader(BytesIO(data))
            page_count = len(reader.pages)
            parts: list[str] = []
            length = 0
            for number in range(min(page_count, limits.max_pages)):
                page = reader.pages[number].extract_text() or ""
                parts.append(f"[page {number + 1}]\n{page}")
                length += len(parts[-1])
                if length > limits.max_chars:
                    break
        except LimitReachedError as exc:
            raise ExtractionFailed(
                f"it exceeds a safety limit of the PDF reader ({exc} The limit of "
                f"decompressed bytes a stream is {stream_limit}.)"
            ) from None
    if page_count > limits.max_pages:
        parts.append(
            f"[only the first {limits.max_pages} of {page_count} pages were extracted: "
            "the page limit]"
        )
    return "\n\n".join(parts)
