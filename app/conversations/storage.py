"""Uploaded files on disk, under the media root at ``conversations/{id}/{safe name}``."""

import contextlib
import hashlib
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from app.conversations.extraction import Extracted

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 150


@dataclass(frozen=True)
class Upload:
    """A checked upload, held in memory until its conversation exists."""

    filename: str
    content_type: str
    data: bytes
    extracted: Extracted = field(default_factory=Extracted)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def safe_filename(filename: str) -> str:
    """A name that cannot leave its folder or surprise a shell: ``../x y.pdf`` → ``x_y.pdf``."""
    name = PurePath(filename.replace("\\", "/")).name
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", name).strip("._") or "file"
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem[: MAX_NAME_LENGTH - len(suffix) - 1] or "file"
    return f"{stem}.{suffix}" if suffix else stem


def _unused_name(folder: Path, name: str) -> str:
    # Two uploads of the same name in one conversation must not overwrite each other.
    candidate, counter = name, 1
    stem, dot, suffix = name.rpartition(".")
    while (folder / candidate).exists():
        candidate = f"{stem}_{counter}.{suffix}" if dot else f"{name}_{counter}"
        counter += 1
    return candidate


def write_upload(media_root: Path, conversation_id: int, upload: Upload) -> str:
    """Write the file and return its storage key (its path below the media root)."""
    folder = media_root / "conversations" / str(conversation_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = _unused_name(folder, safe_filename(upload.filename))
    # Exclusive create: a concurrent writer of the same name fails instead of overwriting.
    with open(folder / name, "xb") as file:
        file.write(upload.data)
    return f"conversations/{conversation_id}/{name}"


def remove_stored(media_root: Path, storage_keys: list[str]) -> None:
    """Remove files whose rows were not stored, and their conversation's folder once empty
    (its id was the failed transaction's: nothing else writes there)."""
    for key in storage_keys:
        path = media_root / key
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        with contextlib.suppress(OSError):  # not empty, or gone already
            os.rmdir(path.parent)


def media_path(media_root: Path, storage_key: str) -> Path:
    return media_root / storage_key


def link_stored(media_root: Path, storage_key: str, conversation_id: int) -> str:
    """The stored file also under another conversation (a retry's), as a hard link where the
    file system allows it (no second copy of the bytes), else a copy; its new storage key.
    FileNotFoundError when the file is gone."""
    source = media_root / storage_key
    folder = media_root / "conversations" / str(conversation_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = _unused_name(folder, PurePath(storage_key).name)
    try:
        os.link(source, folder / name)
    except FileNotFoundError:
        raise
    except OSError:
        # Another file system, or links not supported: a copy, created exclusively.
        with open(source, "rb") as original, open(folder / name, "xb") as copy:
            shutil.copyfileobj(original, copy)
    return f"conversations/{conversation_id}/{name}"
