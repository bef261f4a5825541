"""Enthusiast's clients work unchanged: each test comes from a behaviour of Enthusiast
(upsidelab/enthusiast), its server or its web client, named in the test's docstring."""

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from app.executions.models import ExecutionStatus
from tests.factories import Factory

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "catalog-enrichment"


def start_url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def test_files_refused_with_enthusiasts_detail(client: AsyncClient, factory: Factory) -> None:
    """server/agent/agentic_execution/views.py (StartAgenticExecutionView.post) and
    tests/test_views.py::test_returns_400_when_service_raises_file_upload_not_supported /
    _unsupported_file_type: 400 with `detail`, "This agent does not support file uploads."
    and "File type '.xyz' is not supported. Supported: …" (services.py)."""
    alice = await factory.account()
    dataset = await factory.dataset(alice)
    without_upload = await factory.agent(dataset)
    with_upload = await factory.agent(dataset, file_upload=True, name="Reader")
    form = {"execution_key": KEY, "input": "{}"}

    refused = await client.post(
        start_url(without_upload.id),
        data=form,
        headers=alice.headers,
        files=[("files", ("a.txt", b"hello", "text/plain"))],
    )
    unsupported = await client.post(
        start_url(with_upload.id),
        data=form,
        headers=alice.headers,
        files=[("files", ("a.xyz", b"hello", "text/plain"))],
    )

    assert refused.status_code == unsupported.status_code == 400
    assert refused.json()["detail"] == "This agent does not support file uploads."
    assert "file upload" in refused.json()["detail"].lower()
    detail = unsupported.json()["detail"]
    assert detail.startswith("File type '.xyz' is not supported. Supported: .csv, .jpeg")
    # The web client shows `files` as a list of strings beside the form field.
    assert unsupported.json()["files"] == [detail]


async def test_unknown_top_level_fields_are_ignored(client: AsyncClient, factory: Factory) -> None:
    """server/agent/serializers/agentic_execution.py: StartAgenticExecutionSerializer declares
    `execution_key` and `input` only, and DRF ignores undeclared fields: 202. `input` stays
    strict (tests/test_views.py::test_returns_400_when_input_has_extra_fields)."""
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    body = {"execution_key": KEY, "input": {"skus": ["A"]}, "agent": 7, "files": []}

    started = await client.post(start_url(agent.id), json=body, headers=alice.headers)
    strict = await client.post(
        start_url(agent.id),
        headers=alice.headers,
        json={"execution_key": KEY, "input": {"colour": "red"}},
    )

    assert started.status_code == 202
    assert started.json()["input"]["skus"] == ["A"]
    assert started.json()["agent"] == agent.id
    assert strict.status_code == 400
    assert "colour" in strict.json()["input"]


async def test_input_as_a_json_string_in_a_json_body_is_parsed(
    client: AsyncClient, factory: Factory
) -> None:
    """server/agent/serializers/agentic_execution.py: StartAgenticExecutionSerializer.
    to_internal_value parses any string `input` with json.loads, and answers
    {"input": ["Invalid JSON: …"]} when it is not JSON."""
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    started = await client.post(
        start_url(agent.id),
        headers=alice.headers,
        json={"execution_key": KEY, "input": '{"skus": ["A"]}'},
    )
    broken = await client.post(
        start_url(agent.id), headers=alice.headers, json={"execution_key": KEY, "input": "{nope"}
    )

    assert started.status_code == 202
    assert started.json()["input"]["skus"] == ["A"]
    assert broken.status_code == 400
    [message] = broken.json()["input"]
    assert message.startswith("Invalid JSON: ")


async def test_empty_filter_values_are_ignored(client: AsyncClient, factory: Factory) -> None:
    """server/agent/agentic_execution/views.py: AgenticExecutionListView.get_queryset filters
    only `if dataset_id:` / `if agent_id:` / `if status:`, so empty values list everything;
    the web client (frontend/src/lib/api/agentic-executions.ts) builds such queries."""
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice)

    empty = await client.get(
        "/api/agentic-executions/?agent_id=&status=&dataset_id=", headers=alice.headers
    )
    invalid = await client.get(
        "/api/agentic-executions/?agent_id=x&status=done", headers=alice.headers
    )

    assert empty.status_code == 200
    assert [e["id"] for e in empty.json()["results"]] == [execution.id]
    assert invalid.status_code == 400
    assert set(invalid.json()) == {"agent_id", "status"}


async def test_page_last_is_the_last_page(client: AsyncClient, factory: Factory) -> None:
    """server/agent/agentic_execution/views.py: AgenticExecutionListView is a DRF ListAPIView
    with PageNumberPagination, whose `last_page_strings` make `?page=last` the last page."""
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    executions = [
        await factory.execution(agent, alice, started_at=T0 + timedelta(minutes=i))
        for i in range(27)
    ]

    last = await client.get("/api/agentic-executions/?page=last", headers=alice.headers)
    filtered = await client.get(
        "/api/agentic-executions/?page=last&status=failed", headers=alice.headers
    )
    nothing = await client.get("/api/agentic-executions/?page=last", headers=bob.headers)

    assert last.status_code == 200
    body = last.json()
    assert [e["id"] for e in body["results"]] == [executions[1].id, executions[0].id]
    assert body["count"] == 27
    assert body["next"] is None
    assert body["previous"] is not None
    assert body["previous"].endswith("/api/agentic-executions/")
    assert filtered.status_code == nothing.status_code == 200
    assert filtered.json()["results"] == nothing.json()["results"] == []


async def test_missing_execution_key_has_detail_and_a_list_field_error(
    client: AsyncClient, factory: Factory
) -> None:
    """server/agent/agentic_execution/views.py: a missing key is looked up as "" and answered
    400 {"detail": "No execution definition class registered with EXECUTION_KEY=''."};
    frontend/src/components/agentic-executions/create-execution-modal.tsx reads `detail` as a
    string and `execution_key` / `files` as lists of strings."""
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)

    json_missing = await client.post(start_url(agent.id), json={"input": {}}, headers=alice.headers)
    json_empty = await client.post(
        start_url(agent.id), headers=alice.headers, json={"execution_key": "", "input": {}}
    )
    json_number = await client.post(
        start_url(agent.id), headers=alice.headers, json={"execution_key": 5, "input": {}}
    )
    form_missing = await client.post(
        start_url(agent.id),
        data={"input": "{}"},
        headers=alice.headers,
        files=[("files", ("a.txt", b"x", "text/plain"))],
    )
    too_many = await client.post(
        start_url(agent.id),
        data={"execution_key": KEY},
        headers=alice.headers,
        files=[("files", (f"{i}.txt", b"x", "text/plain")) for i in range(11)],
    )

    for response in (json_missing, json_empty, json_number, form_missing):
        assert response.status_code == 400
        body = response.json()
        assert isinstance(body["detail"], str)
        assert KEY in body["detail"]
        assert isinstance(body["execution_key"], list)
        assert all(isinstance(message, str) for message in body["execution_key"])
    assert json_missing.json()["execution_key"] == ["This field is required."]
    assert too_many.status_code == 400
    assert isinstance(too_many.json()["detail"], str)
    assert too_many.json()["files"] == ["At most 10 files per execution."]


async def test_a_status_filter_beside_an_empty_one_still_filters(
    client: AsyncClient, factory: Factory
) -> None:
    """server/agent/agentic_execution/views.py: a non-empty `status` filters the list."""
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    await factory.execution(agent, alice)
    done = await factory.execution(agent, alice, status=ExecutionStatus.FINISHED.value)

    response = await client.get(
        "/api/agentic-executions/?status=finished&agent_id=", headers=alice.headers
    )

    assert [e["id"] for e in response.json()["results"]] == [done.id]
