"""The protocol tests drive the running app with the SDKs' own clients; a worker runs each
execution in-process (tests/worker/harness.py)."""

from tests.worker.conftest import worker, worker_ctx

__all__ = ["worker", "worker_ctx"]
