"""Text extraction in a child process that is killed past its limits.

Where: at upload, in the API, before anything is stored; the text is kept on the file's row
(``conversation_files.extracted_text``, or ``extraction_error``) and the ``read_file`` tool
reads it from there. So a run never parses a file: a worker shared by every tenant spends no
CPU on one tenant's PDF, a bomb cannot cost an execution attempt (a worker killed mid-run would
run it again), and the cost falls on the request of the tenant who sent the file. The text is
kept with the conversation, where its history can show it. Rows stored before extraction at
upload existed are extracted on their first read, in the worker, by the same code and limits.

How: one child per PDF or JSON file, forked from a forkserver that imported pypdf once
(measured on the shared 2-core test machine under load: a one-page PDF takes 37 ms median
from the request to its text; a plain fork that imports pypdf took ~800 ms, a spawn ~1.4 s,
and a bomb refused by its decompressed size 70 ms). The child sets RLIMIT_CPU (the kernel
kills it) and RLIMIT_AS (allocations fail) on itself; the parent kills it at the wall-time
limit. The request holds no database connection meanwhile (the router closes its session).
A pool of long-lived processes (ProcessPoolExecutor) would save the fork, but cannot kill one
task: a killed worker breaks the whole pool and every task in it.
Plain text, Markdown and CSV are only decoded, in the API process.

How many: the parent waits in a thread pool of its own, ``extraction_concurrency`` threads,
so at most that many children run at once per process (a burst of bombs cannot take every
core, nor the event loop's default thread pool), and one at a time per user, so one user's
files wait for each other, not for another user's.
"""

import asyncio
import multiprocessing
import multiprocessing.forkserver
import resource
import signal
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

from app.conversations.extraction import (
    PARSED_TYPES,
    TEXT_TYPES,
    Extracted,
    ExtractionFailed,
    ExtractionLimits,
    extract_text,
)


def _preloaded_modules() -> list[str]:
    """What the forkserver imports once, so that no child imports anything.

    Each child runs the main module again (multiprocessing's "safe importing of main"):
    importing it in the forkserver first ("__main__" for a script such as ``agentrun`` or
    ``uvicorn``, its name for ``python -m``) makes that free; the CLI's imports alone took
    seconds a child on the loaded test machine otherwise.
    """
    main = getattr(sys.modules["__main__"].__spec__, "name", None)
    by_name = [main] if main and not main.endswith("__main__") else []
    return ["__main__", *by_name, "app.conversations.extraction"]


_processes = multiprocessing.get_context("forkserver")
_processes.set_forkserver_preload(_preloaded_modules())


class TextExtractor:
    """Extracts uploads' text for one process (the API's, or a worker's for older rows)."""

    def __init__(self, limits: ExtractionLimits, concurrency: int) -> None:
        self.limits = limits
        self._waiters = ThreadPoolExecutor(max(concurrency, 1), thread_name_prefix="extraction")
        self._user_locks: dict[int, asyncio.Lock] = {}
        self._user_calls: Counter[int] = Counter()

    async def extract(self, source: bytes | Path, content_type: str, user_id: int) -> Extracted:
        """The text of a file (its bytes, or its path), or the reason there is none."""
        if content_type not in TEXT_TYPES:
            return Extracted()
        if content_type not in PARSED_TYPES:
            data = (
                source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
            )
            return Extracted(text=extract_text(data, content_type, self.limits))
        self._user_calls[user_id] += 1
        lock = self._user_locks.setdefault(user_id, asyncio.Lock())
        try:
            async with lock:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(
                    self._waiters, run_child, source, content_type, self.limits
                )
        finally:
            self._user_calls[user_id] -= 1
            if not self._user_calls[user_id]:
                del self._user_calls[user_id], self._user_locks[user_id]

    def start(self) -> None:
        """Start the forkserver now, so that the first upload does not wait for it."""
        self._waiters.submit(multiprocessing.forkserver.ensure_running)

    def close(self) -> None:
        self._waiters.shutdown(wait=False, cancel_futures=True)


def run_child(source: bytes | Path, content_type: str, limits: ExtractionLimits) -> Extracted:
    """Extract in a child process; kill it at the time limit. Blocks: run it in a thread."""
    receiver, sender = _processes.Pipe(duplex=False)
    child = _processes.Process(
        target=_child_main, args=(source, content_type, limits, sender), daemon=True
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(limits.timeout_seconds):
            return Extracted(
                error=f"it took longer than the {limits.timeout_seconds:g}-second limit"
            )
        try:
            text, error = receiver.recv()
        except EOFError:
            child.join(1)
            return Extracted(error=_death(child.exitcode, limits))
        return Extracted(text=text, error=error)
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        child.close()
        receiver.close()


def _death(exitcode: int | None, limits: ExtractionLimits) -> str:
    if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"it needed more than the {limits.cpu_seconds}-second CPU limit"
    return f"the extraction stopped unexpectedly (exit code {exitcode})"


def _child_main(
    source: bytes | Path, content_type: str, limits: ExtractionLimits, sender: Connection
) -> None:
    # The soft limit sends SIGXCPU (which ends the process); the hard one, a second on, SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    text: str | None = None
    error: str | None = None
    try:
        data = source if isinstance(source, bytes) else source.read_bytes()
        text = extract_text(data, content_type, limits)
    except ExtractionFailed as exc:
        error = str(exc)
    except MemoryError:
        error = f"it needed more than the {limits.memory_bytes // 2**20} MiB memory limit"
    except RecursionError:
        error = "it is nested too deeply to parse"
    except Exception as exc:  # any parser error: the tool says what it was
        error = f"the file could not be parsed ({type(exc).__name__}: {exc})"
    sender.send((text, error))
    sender.close()
