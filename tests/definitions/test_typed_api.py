"""The API typed per execution type: the start body as a union discriminated on
``execution_key`` (one member per registered type, a plugin's too), each type's result schema
and version in its definition, and the version recorded on every execution."""

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.definitions.package_version import installed_distributions
from app.definitions.registry import all_definitions
from app.executions.models import AgenticExecution
from app.main import create_app
from tests.factories import Factory

START = "/api/agents/{agent_id}/agentic-executions/"
BUILT_IN = {
    "catalog-enrichment": "CatalogEnrichment",
    "invoice-scanning": "InvoiceScanning",
    "structured-task": "StructuredTask",
}
PLUGIN_MODULE = "agentrun_test_plugin"
PLUGIN_SOURCE = """
from pydantic import BaseModel, ConfigDict

from app.definitions.base import ExecutionDefinition


class EchoReportInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class EchoReportResult(BaseModel):
    echoed: str
    length: int


class EchoReport(ExecutionDefinition):
    key = "echo-report"
    agent_type = "echo-report"
    name = "Echo Report"
    Input = EchoReportInput
    Output = EchoReportResult


definition = EchoReport()
"""


@pytest.fixture
def plugin(tmp_path: Path, app: FastAPI) -> Iterator[None]:
    """A distribution installed on sys.path, registering one definition by entry point.

    After the session's app exists: that one is built from the definitions without it."""
    package = tmp_path / PLUGIN_MODULE
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    metadata = tmp_path / f"{PLUGIN_MODULE}-2.5.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: agentrun-test-plugin\nVersion: 2.5.0\n"
    )
    (metadata / "top_level.txt").write_text(f"{PLUGIN_MODULE}\n")
    (metadata / "entry_points.txt").write_text(
        f"[agentrun.execution_definitions]\necho-report = {PLUGIN_MODULE}:definition\n"
    )
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    all_definitions.cache_clear()
    installed_distributions.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(PLUGIN_MODULE, None)
        importlib.invalidate_caches()
        all_definitions.cache_clear()
        installed_distributions.cache_clear()


def start_body(document: dict[str, Any]) -> dict[str, Any]:
    content = document["paths"][START]["post"]["requestBody"]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def component(document: dict[str, Any], reference: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    return found


async def test_the_start_body_is_a_union_with_one_member_per_type(
    client: AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()

    body = start_body(document)
    mapping = body["discriminator"]["mapping"]
    assert body["discriminator"]["propertyName"] == "execution_key"
    assert sorted(mapping) == sorted(BUILT_IN)
    assert [member["$ref"] for member in body["oneOf"]] == list(mapping.values())
    catalog = component(document, mapping["catalog-enrichment"])
    assert catalog["properties"]["execution_key"] == {
        "type": "string",
        "const": "catalog-enrichment",
    }
    assert catalog["properties"]["input"] == {
        "$ref": "#/components/schemas/CatalogEnrichmentAgenticExecutionInput"
    }
    catalog_input = component(document, catalog["properties"]["input"]["$ref"])
    assert sorted(catalog_input["properties"]) == ["additional_instructions", "skus"]
    assert catalog_input["additionalProperties"] is False
    multipart = document["paths"][START]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert sorted(multipart["schema"]["properties"]) == [
        "execution_key",
        "files[]",
        "input",
        "limits",
    ]


async def test_each_types_execution_and_result_are_components(client: AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    for key, name in BUILT_IN.items():
        execution = schemas[f"{name}Execution"]
        assert execution["properties"]["execution_key"]["const"] == key
        assert "definition_version" in execution["properties"]
    assert schemas["CatalogEnrichmentExecution"]["properties"]["result"]["anyOf"] == [
        {"$ref": "#/components/schemas/CatalogEnrichmentResult"},
        {"type": "null"},
    ]
    assert schemas["CatalogEnrichmentResult"]["additionalProperties"] == {"type": "string"}
    # structured-task's result follows the request's own output_schema.
    assert "anyOf" not in schemas["StructuredTaskExecution"]["properties"]["result"]


async def test_a_plugins_type_joins_the_union_with_its_own_input_and_result(
    plugin: None, settings: Settings
) -> None:
    document = create_app(settings).openapi()

    mapping = start_body(document)["discriminator"]["mapping"]
    assert sorted(mapping) == sorted([*BUILT_IN, "echo-report"])
    member = component(document, mapping["echo-report"])
    assert member["properties"]["input"] == {"$ref": "#/components/schemas/EchoReportInput"}
    echo_input = component(document, member["properties"]["input"]["$ref"])
    assert echo_input["required"] == ["text"]
    result = document["components"]["schemas"]["EchoReportExecution"]["properties"]["result"]
    assert result["anyOf"][0] == {"$ref": "#/components/schemas/EchoReportResult"}


async def test_definitions_give_their_version_and_result_schema(
    plugin: None, client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    dataset = await factory.dataset(alice)
    catalog = await factory.agent(dataset)
    task = await factory.agent(dataset, agent_type="structured-task")
    echo = await factory.agent(dataset, agent_type="echo-report")

    def definitions(agent_id: int) -> Any:
        return client.get(
            f"/api/agents/{agent_id}/agentic-execution-definitions/", headers=alice.headers
        )

    [catalog_definition] = (await definitions(catalog.id)).json()
    [task_definition] = (await definitions(task.id)).json()
    [echo_definition] = (await definitions(echo.id)).json()

    assert catalog_definition["version"] == "1.0.0"
    assert catalog_definition["output_schema"]["additionalProperties"] == {"type": "string"}
    assert task_definition["output_schema"] is None
    # No version declared: the plugin distribution's.
    assert echo_definition["version"] == "2.5.0"
    assert echo_definition["output_schema"]["required"] == ["echoed", "length"]


async def test_the_version_that_ran_an_execution_is_recorded_at_submit(
    plugin: None,
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    alice = await factory.account()
    dataset = await factory.dataset(alice)
    catalog = await factory.agent(dataset)
    echo = await factory.agent(dataset, agent_type="echo-report")

    started_catalog = await client.post(
        START.format(agent_id=catalog.id),
        json={"execution_key": "catalog-enrichment", "input": {"skus": ["SKU-1"]}},
        headers=alice.headers,
    )
    started_echo = await client.post(
        START.format(agent_id=echo.id),
        json={"execution_key": "echo-report", "input": {"text": "hi"}},
        headers=alice.headers,
    )
    read = await client.get(
        f"/api/agentic-executions/{started_catalog.json()['id']}/", headers=alice.headers
    )
    listed = await client.get("/api/agentic-executions/", headers=alice.headers)

    assert started_catalog.json()["definition_version"] == "1.0.0"
    assert started_echo.json()["definition_version"] == "2.5.0"
    assert read.json()["definition_version"] == "1.0.0"
    assert sorted(e["definition_version"] for e in listed.json()["results"]) == [
        "1.0.0",
        "2.5.0",
    ]
    async with sessionmaker() as session:
        stored = await session.scalars(
            select(AgenticExecution.definition_version).order_by(AgenticExecution.id)
        )
        assert list(stored) == ["1.0.0", "2.5.0"]


async def test_an_execution_stored_without_a_version_reads_as_null(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    # As the previous release stores it (no definition_version).
    execution = await factory.execution(agent, alice)

    read = await client.get(f"/api/agentic-executions/{execution.id}/", headers=alice.headers)

    assert read.status_code == 200
    assert read.json()["definition_version"] is None
