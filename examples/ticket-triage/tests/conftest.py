# The fixtures `agentrun` (a harness on a migrated test database) and friends.
pytest_plugins = ["agentrun.testing"]
