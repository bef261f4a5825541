"""``python -m app.cli``: the ``agentrun`` command as the tests start it."""

from app.cli import main

main()
