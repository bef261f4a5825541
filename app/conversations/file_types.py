"""Which uploads we accept, decided by their content rather than their name or client header."""

import json
from pathlib import PurePath

import puremagic

# extension -> the content type we store and serve
BINARY_TYPES = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
TEXT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".json": "application/json",
}
ACCEPTED_EXTENSIONS = sorted(BINARY_TYPES.keys() | TEXT_TYPES.keys())


class UnsupportedFile(ValueError):
    """The file's name or content is not one of the accepted types."""


def _sniffed_mime_types(data: bytes) -> set[str]:
    try:
        return {match.mime_type for match in puremagic.magic_string(data)}
    except (puremagic.PureError, ValueError):  # ValueError: empty input
        return set()


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True


def detect_content_type(filename: str, data: bytes) -> str:
    """The content type of an upload, or UnsupportedFile saying why it is refused."""
    extension = PurePath(filename).suffix.lower()
    if extension in BINARY_TYPES:
        expected = BINARY_TYPES[extension]
        if not data:
            raise UnsupportedFile(
                f"{filename!r} is empty: not a valid {extension[1:].upper()} file."
            )
        if expected not in _sniffed_mime_types(data):
            raise UnsupportedFile(f"{filename!r} is not a valid {extension[1:].upper()} file.")
        return expected
    if extension in TEXT_TYPES:
        if not _is_text(data):
            raise UnsupportedFile(f"{filename!r} is not UTF-8 text.")
        if extension == ".json":
            try:
                json.loads(data.decode("utf-8-sig"))
            except ValueError:
                raise UnsupportedFile(f"{filename!r} is not valid JSON.") from None
            except RecursionError:
                # Nested deeper than the parser recurses: accepted, its text is shown as sent.
                pass
        return TEXT_TYPES[extension]
    # Enthusiast's wording (agent/agentic_execution/services.py), with the file named.
    raise UnsupportedFile(
        f"File type {extension!r} is not supported. Supported: {', '.join(ACCEPTED_EXTENSIONS)}. "
        f"({filename!r})"
    )
