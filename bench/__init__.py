"""The performance benchmark of agentrun: ``python -m bench`` (see README.md here)."""
