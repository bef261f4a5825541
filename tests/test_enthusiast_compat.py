"""Enthusiast's clients work unchanged: each test comes from a behaviour of Enthusiast
(upsidelab/enthusiast), its server or its web client, named in the test's docstring."""

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Conversation
from app.executions.models import ExecutionStatus
from tests.factories import Factory

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "catalog-enrichment"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


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
    # Every field error of the endpoint has that shape, a header's too.
    long_key = await client.post(
        start_url(agent.id),
        json={"execution_key": KEY},
        headers={**alice.headers, "Idempotency-Key": "k" * 256},
    )
    assert long_key.status_code == 400
    assert isinstance(long_key.json()["detail"], str)
    [message] = long_key.json()["Idempotency-Key"]
    assert "255" in message


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


async def test_execution_conversation_in_enthusiasts_shape_with_a_file_entry_per_upload(
    client: AsyncClient, factory: Factory
) -> None:
    """server/agent/serializers/conversation.py (ConversationContentSerializer,
    MessagesSerializer) and agent/services/conversation_file_message_service.py: the detail is
    {id, started_at, summary, history: [{id, text, type, file_type, file_name}], agent: {…},
    is_execution_conversation}; each uploaded file adds a `file` message (text shown as "");
    function and intermediate_step messages are left out (views.py ConversationView.get)."""
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)
    files = [("files", ("product_data.pdf", PDF, "application/pdf")),
             ("files", ("notes.txt", b"hello", "text/plain"))]  # fmt: skip
    started = await client.post(start_url(agent.id), data={"execution_key": KEY},
                                files=files, headers=alice.headers)  # fmt: skip
    conversation_id = started.json()["conversation"]
    for role, content in (("system", "You enrich."), ("user", "Enrich A"),
                          ("tool_call", "{}"), ("assistant", "Done")):  # fmt: skip
        await factory.message(conversation_id, role, content)

    response = await client.get(f"/api/conversations/{conversation_id}/", headers=alice.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == conversation_id
    assert body["is_execution_conversation"] is True
    assert body["summary"] is None
    assert body["started_at"] == started.json()["started_at"]
    assert body["agent"]["id"] == agent.id
    assert body["agent"]["name"] == agent.name
    assert body["agent"]["deleted_at"] is None
    assert body["agent"]["corrupted"] is False
    history = [(h["type"], h["text"], h["file_name"], h["file_type"]) for h in body["history"]]
    assert history == [
        ("file", "", "product_data", "pdf"),
        ("file", "", "notes", "txt"),
        ("system", "You enrich.", None, None),
        ("human", "Enrich A", None, None),
        ("ai", "Done", None, None),
    ]
    assert len({h["id"] for h in body["history"]}) == 5
    # The whole trace stays beside it.
    assert [m["role"] for m in body["messages"]] == [
        "file", "file", "system", "user", "tool_call", "assistant",
    ]  # fmt: skip
    assert [f["filename"] for f in body["files"]] == ["product_data.pdf", "notes.txt"]


async def test_posting_to_an_execution_conversation_is_400_conversation_locked(
    client: AsyncClient, factory: Factory
) -> None:
    """server/agent/views.py ConversationView.post and
    tests/test_views.py::test_execution_conversation_post_returns_400: 400
    {"detail": "Conversation locked."}; an unknown conversation is 404."""
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice)
    path = f"/api/conversations/{execution.conversation_id}/"
    message = {"question_message": "Hello?", "data_set_id": agent.dataset_id, "streaming": False}

    locked = await client.post(path, json=message, headers=alice.headers)
    foreign = await client.post(path, json=message, headers=bob.headers)

    assert locked.status_code == 400
    assert locked.json() == {"detail": "Conversation locked."}
    assert foreign.status_code == 404


async def test_conversation_list_leaves_execution_conversations_out(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    """server/agent/views.py ConversationListView (frontend/src/lib/api/conversations.ts
    getConversations: `?data_set_id=&page=`) and
    tests/test_views.py::test_execution_conversations_are_excluded_from_list /
    test_list_conversations_filters_by_data_set_id: the user's own chats, newest first,
    paginated, filtered by data set and agent; an execution's conversation is not listed."""
    alice, bob = await factory.account(), await factory.account()
    dataset, other = await factory.dataset(alice), await factory.dataset(alice, name="Other")
    agent, elsewhere = await factory.agent(dataset), await factory.agent(other)
    await factory.execution(agent, alice)
    chats = []
    for chat_agent, owner in ((agent, alice), (elsewhere, alice), (agent, bob)):
        chat = Conversation(agent_id=chat_agent.id, user_id=owner.user.id)
        session.add(chat)
        await session.commit()
        chats.append(chat.id)

    everything = await client.get("/api/conversations/?data_set_id=&page=1",
                                  headers=alice.headers)  # fmt: skip
    one_dataset = await client.get(f"/api/conversations/?data_set_id={dataset.id}&page=last",
                                   headers=alice.headers)  # fmt: skip
    by_agent = await client.get(f"/api/conversations/?agent_id={elsewhere.id}",
                                headers=alice.headers)  # fmt: skip
    beyond = await client.get("/api/conversations/?page=2", headers=alice.headers)

    assert everything.status_code == 200
    body = everything.json()
    assert [c["id"] for c in body["results"]] == [chats[1], chats[0]]
    assert body["count"] == 2
    assert body["next"] is None
    assert set(body["results"][0]) == {"id", "started_at", "summary", "agent"}
    assert body["results"][0]["agent"]["name"] == elsewhere.name
    assert [c["id"] for c in one_dataset.json()["results"]] == [chats[0]]
    assert [c["id"] for c in by_agent.json()["results"]] == [chats[1]]
    assert beyond.status_code == 404


async def test_agents_filtered_by_dataset_and_deleted_softly(
    client: AsyncClient, factory: Factory
) -> None:
    """server/agent/views.py AgentView.get (agent/filters.py AgentFilter: `?dataset=`, as
    frontend/src/lib/api/agents.ts getDatasetAvailableAgents asks) and AgentDetailsView.delete
    (tests/test_views.py::test_get_multiple_agents, test_dataset_not_found,
    test_delete_existing_agent, test_delete_nonexistent_agent_returns_404): 204, `deleted_at`
    set, the agent leaves the list and takes no executions
    (agentic_execution/tests/test_views.py::test_returns_404_for_soft_deleted_agent), while
    its executions stay readable."""
    admin, alice = await factory.account(admin=True), await factory.account()
    dataset, other = await factory.dataset(alice), await factory.dataset(alice, name="Other")
    first, second = await factory.agent(dataset), await factory.agent(dataset, name="Second")
    elsewhere = await factory.agent(other)
    execution = await factory.execution(first, alice)

    listed = await client.get(f"/api/agents/?dataset={dataset.id}", headers=alice.headers)
    unknown = await client.get("/api/agents/?dataset=9999", headers=alice.headers)
    by_member = await client.delete(f"/api/agents/{first.id}/", headers=alice.headers)
    deleted = await client.delete(f"/api/agents/{first.id}/", headers=admin.headers)
    again = await client.delete(f"/api/agents/{first.id}/", headers=admin.headers)
    missing = await client.delete("/api/agents/9999/", headers=admin.headers)
    after = await client.get(f"/api/agents/?dataset={dataset.id}", headers=alice.headers)
    start = await client.post(start_url(first.id), json={"execution_key": KEY},
                              headers=alice.headers)  # fmt: skip
    read = await client.get(f"/api/agentic-executions/{execution.id}/", headers=alice.headers)
    listed_executions = await client.get(f"/api/agentic-executions/?agent_id={first.id}",
                                         headers=alice.headers)  # fmt: skip
    conversation = await client.get(f"/api/conversations/{execution.conversation_id}/",
                                    headers=alice.headers)  # fmt: skip

    assert [a["id"] for a in listed.json()] == [first.id, second.id]
    assert elsewhere.id not in [a["id"] for a in listed.json()]
    assert unknown.status_code == 200
    assert unknown.json() == []
    assert by_member.status_code == 403
    assert deleted.status_code == 204
    assert again.status_code == missing.status_code == 404
    assert [a["id"] for a in after.json()] == [second.id]
    assert start.status_code == 404
    assert read.status_code == 200
    assert [e["id"] for e in listed_executions.json()["results"]] == [execution.id]
    assert conversation.status_code == 200
    assert conversation.json()["agent"]["deleted_at"] is not None
