"""``arq workers.arq_settings.WorkerSettings``: the worker as arq's own command line runs it.

A module of its own, so that the settings are read from the environment only by the process
that runs arq this way, not by everything that imports ``workers.process.startup``. (``agentrun
worker`` runs the same worker on uvloop: ``workers.process.startup.run_worker``.)
"""

from typing import Any

from app.core.config import get_settings
from workers.process.startup import worker_settings

WorkerSettings: dict[str, Any] = worker_settings(get_settings())
