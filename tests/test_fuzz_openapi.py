"""Schemathesis fuzzes every operation of our own OpenAPI document, through ASGI.

With an admin token (so that most requests get past authentication) and some data to find,
every response must be no 5xx, have a status the operation documents, and a body that
matches the documented schema.
"""

import asyncio
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from httpx import AsyncClient
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings
from app.core.logging import configure_logging
from app.main import create_app
from tests.factories import Factory

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def fuzz(settings: Settings, headers: dict[str, str]) -> dict[str, str]:
    """Run every operation's examples; answers the failures, by operation."""
    # Its own app, run by schemathesis on an event loop of its own; no rate limit to trip.
    quiet = {"rate_limit_per_minute": 0, "log_level": "WARNING"}
    app = create_app(settings.model_copy(update=quiet))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Revoking runs last: the fuzzer finds the admin's own token id (1) soon enough.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda operation: operation.path.endswith("/revoke/"),
    )
    failures: dict[str, str] = {}
    try:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                @hypothesis.settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: Any) -> None:
                    case.call_and_validate(headers=headers, checks=CHECKS)

                try:
                    run()
                except hypothesis.errors.Unsatisfiable:
                    # No invalid request exists for an operation that takes no input.
                    assert mode is GenerationMode.NEGATIVE
                except Exception as exc:
                    failures[f"{operation.label} ({mode.value})"] = str(exc)[:3000]
    finally:
        asgi.shutdown_lifespans()
        configure_logging(settings)
    return failures


async def test_no_operation_errors_or_strays_from_its_documentation(
    settings: Settings, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset(admin)
    agent = await factory.agent(dataset, file_upload=True)
    await factory.product(dataset, "SKU-1")
    await factory.execution(agent, admin)

    failures = await asyncio.to_thread(fuzz, settings, admin.headers)

    assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())


async def test_the_document_lists_400_where_input_is_taken_and_never_422(
    client: AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()

    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "400" in responses, (method, path)
            if operation.get("security"):
                assert {"401", "503"} <= set(responses), (method, path)
            if method == "post" and operation.get("security"):
                assert "Retry-After" in responses["429"]["headers"], (method, path)
    start = schema["paths"]["/api/agents/{agent_id}/agentic-executions/"]["post"]
    assert {"409", "413", "415"} <= set(start["responses"])
    assert "Idempotency-Key" in [parameter["name"] for parameter in start["parameters"]]
    cancel = schema["paths"]["/api/agentic-executions/{execution_id}/cancel/"]["post"]
    assert {"200", "202", "404", "409"} <= set(cancel["responses"])
