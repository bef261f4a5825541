"""What executions may use and what they used: usage, limits (agent and execution) and
per-user daily quotas."""
