"""Ctrl-C on `make dev` (``agentrun dev``) stops the API and the worker cleanly: no traceback,
within seconds."""

import asyncio
import signal
import sys
from pathlib import Path

from app.core.config import Settings

AGENTRUN = Path(sys.executable).parent / "agentrun"
STARTUP_SECONDS = 60
STOP_SECONDS = 10


async def test_ctrl_c_stops_make_dev_without_a_traceback(settings: Settings) -> None:
    process = await asyncio.create_subprocess_exec(
        AGENTRUN,
        "dev",
        "--port",
        "0",
        env={
            "PATH": "/usr/bin:/bin",
            "AGENTRUN_DATABASE_URL": settings.database_url,
            "AGENTRUN_REDIS_URL": settings.redis_url,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            while b"Application startup complete" not in await process.stdout.readline():
                pass
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(STOP_SECONDS):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
    assert b"agentrun dev stopped." in stderr
