"""The worker process: its start-up and shutdown, and arq's worker that takes the jobs."""
