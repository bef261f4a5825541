"""uvicorn run inside a process that handles its signals itself."""

import contextlib
from collections.abc import Iterator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone: uvicorn's own handling would
    take SIGINT/SIGTERM from whoever runs it (the API's server, ``agentrun dev``) and, once
    stopped, raise them again. Stopped by setting ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
