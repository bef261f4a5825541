"""The run pipeline: one job from claim to outcome (``jobs.run_execution``), the pydantic-ai
run, its trace, journal and heartbeat, and the models it calls."""
