"""The ``agentrun`` command line: ``main`` (``commands``) parses it; ``budgets`` holds the quota
and limit commands, ``remote`` the commands that call a running API, ``session`` how a command
runs, ``dev_stack`` and ``demo`` the ``dev`` command's stack and its demo data."""

from app.cli.commands import main

__all__ = ["main"]
