"""A worker process runs agents and sends webhooks: importing its entry points loads none of the
API's routes, the console, the protocol adapters, their SDKs or Jinja (the import-linter
contracts in pyproject.toml hold the code to it; this checks what Python actually loads)."""

import json
import subprocess
import sys

import pytest

# What only the API serves with: a route module, the console's pages, the A2A and MCP
# adapters and SDKs, the console's templates.
API_ONLY_PACKAGES = (
    "app.console",
    "app.protocols",
    "app.conversations_api",
    "a2a",
    "mcp",
    "jinja2",
)


def loaded_by_importing(module: str) -> list[str]:
    code = f"import {module}, json, sys; print(json.dumps(sorted(sys.modules)))"
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    modules: list[str] = json.loads(found.stdout)
    return modules


@pytest.mark.parametrize("entry_point", ["workers.arq_settings", "workers.process.startup"])
def test_the_worker_loads_no_route_console_protocol_sdk_or_jinja(entry_point: str) -> None:
    loaded = loaded_by_importing(entry_point)

    assert entry_point in loaded
    assert "workers.run.jobs" in loaded
    api_only = [
        name
        for name in loaded
        if name == "app.main"
        or name.rsplit(".", 1)[-1].endswith("router")
        or any(name == p or name.startswith(f"{p}.") for p in API_ONLY_PACKAGES)
    ]
    assert api_only == []
