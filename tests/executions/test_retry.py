"""POST /api/agentic-executions/{id}/retry/: a new execution like an ended one, with or without
resume, under the rules of a start (tenancy, Idempotency-Key, quotas)."""

import os
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from httpx import AsyncClient

from tests.factories import Account, Factory

INPUT = {"skus": ["SKU-1"]}


def retry_url(execution_id: int) -> str:
    return f"/api/agentic-executions/{execution_id}/retry/"


async def ended(factory: Factory, **fields: Any) -> tuple[Account, int]:
    """A user and an execution of his that ended as ``fields`` say (failed by default)."""
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    values = {"status": "failed", "failure_code": "runtime_error", "failure_explanation": "x"}
    execution = await factory.execution(agent, alice, input=INPUT, **{**values, **fields})
    return alice, execution.id


async def test_a_retry_starts_a_new_execution_linked_both_ways(
    client: AsyncClient, factory: Factory, queue: ArqRedis
) -> None:
    alice, old_id = await ended(factory, limits={"max_cost": 0.5})

    response = await client.post(retry_url(old_id), headers=alice.headers)

    assert response.status_code == 202
    new = response.json()
    assert new["id"] != old_id
    assert (new["status"], new["retry_of"], new["resume_from"]) == ("pending", old_id, None)
    assert (new["execution_key"], new["input"]) == ("catalog-enrichment", INPUT)
    assert new["limits"]["max_cost"] == 0.5
    job = Job(new["celery_task_id"], queue, _queue_name=factory.settings.queue_name)
    assert await job.status() == JobStatus.queued
    old = await client.get(f"/api/agentic-executions/{old_id}/", headers=alice.headers)
    assert old.json()["retried_by"] == [new["id"]]
    again = await client.post(retry_url(old_id), headers=alice.headers)
    listed = await client.get("/api/agentic-executions/", headers=alice.headers)
    by_id = {e["id"]: e for e in listed.json()["results"]}
    assert by_id[old_id]["retried_by"] == [new["id"], again.json()["id"]]


async def test_a_finished_execution_may_be_retried(client: AsyncClient, factory: Factory) -> None:
    alice, old_id = await ended(factory, status="finished", failure_code=None, result={})

    response = await client.post(retry_url(old_id), headers=alice.headers)

    assert response.status_code == 202


async def test_a_resumed_retry_of_a_runtime_error_records_where_it_resumes_from(
    client: AsyncClient, factory: Factory
) -> None:
    alice, old_id = await ended(factory)

    response = await client.post(retry_url(old_id), json={"resume": True}, headers=alice.headers)

    assert response.status_code == 202
    assert (response.json()["retry_of"], response.json()["resume_from"]) == (old_id, old_id)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"failure_code": "budget_exceeded"}, "failed with budget_exceeded"),
        ({"failure_code": "validation_failed"}, "failed with validation_failed"),
        ({"status": "finished", "failure_code": None}, "finished"),
    ],
)
async def test_resume_is_refused_unless_the_execution_failed_with_runtime_error(
    fields: dict[str, Any], says: str, client: AsyncClient, factory: Factory
) -> None:
    alice, old_id = await ended(factory, **fields)

    response = await client.post(retry_url(old_id), json={"resume": True}, headers=alice.headers)

    assert response.status_code == 409
    assert says in response.json()["detail"]
    assert "only an execution that failed with runtime_error" in response.json()["detail"]


@pytest.mark.parametrize("status", ["pending", "in_progress"])
async def test_an_execution_that_has_not_ended_is_not_retried(
    status: str, client: AsyncClient, factory: Factory
) -> None:
    alice, old_id = await ended(factory, status=status, failure_code=None)

    response = await client.post(retry_url(old_id), headers=alice.headers)

    assert response.status_code == 409
    assert f"is still {status}" in response.json()["detail"]


async def test_another_users_execution_is_404_and_a_bad_body_400(
    client: AsyncClient, factory: Factory
) -> None:
    _, old_id = await ended(factory)
    bob = await factory.account()

    others = await client.post(retry_url(old_id), headers=bob.headers)
    missing = await client.post(retry_url(999), headers=bob.headers)
    admin = await factory.account(admin=True)
    bad = await client.post(retry_url(old_id), json={"resume": "maybe"}, headers=admin.headers)
    unknown = await client.post(retry_url(old_id), json={"from_step": 3}, headers=admin.headers)

    assert (others.status_code, others.json()) == (404, {"detail": "Execution not found."})
    assert missing.status_code == 404
    assert bad.status_code == 400
    assert "resume" in bad.json()
    assert unknown.status_code == 400


async def test_a_retry_of_a_deleted_agents_execution_is_409(
    client: AsyncClient, factory: Factory
) -> None:
    alice, old_id = await ended(factory)
    admin = await factory.account(admin=True)
    old = await client.get(f"/api/agentic-executions/{old_id}/", headers=alice.headers)
    await client.delete(f"/api/agents/{old.json()['agent']}/", headers=admin.headers)

    response = await client.post(retry_url(old_id), headers=alice.headers)

    assert response.status_code == 409
    assert "agent" in response.json()["detail"]


async def test_a_repeated_retry_with_the_same_idempotency_key_answers_the_first(
    client: AsyncClient, factory: Factory
) -> None:
    alice, old_id = await ended(factory)
    headers = {**alice.headers, "Idempotency-Key": "retry-1"}

    first = await client.post(retry_url(old_id), headers=headers)
    repeat = await client.post(retry_url(old_id), headers=headers)
    other = await client.post(retry_url(old_id), json={"resume": True}, headers=headers)

    assert (first.status_code, repeat.status_code) == (202, 202)
    assert repeat.json()["id"] == first.json()["id"]
    assert repeat.headers["Idempotent-Replayed"] == "true"
    # The same key for another request (a resume this time) is refused.
    assert other.status_code == 409


async def test_a_retry_past_the_users_quota_is_429(client: AsyncClient, factory: Factory) -> None:
    alice, old_id = await ended(factory)
    admin = await factory.account(admin=True)
    await client.put(
        f"/api/users/{alice.user.id}/quotas/",
        json={"max_executions_per_day": 1},
        headers=admin.headers,
    )

    response = await client.post(retry_url(old_id), headers=alice.headers)

    assert response.status_code == 429
    assert response.json()["quota"] == "max_executions_per_day"
    assert "Retry-After" in response.headers


async def test_a_retry_has_the_files_of_the_execution_without_a_second_copy(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        data={"execution_key": "catalog-enrichment", "input": "{}"},
        files=[("files[]", ("notes.txt", b"the notes", "text/plain"))],
        headers=alice.headers,
    )
    old = started.json()
    await client.post(f"/api/agentic-executions/{old['id']}/cancel/", headers=alice.headers)

    response = await client.post(retry_url(old["id"]), headers=alice.headers)

    assert response.status_code == 202
    [file] = response.json()["files"]
    assert file["filename"] == "notes.txt"
    assert file["file_url"] != old["files"][0]["file_url"]
    served = await client.get(file["file_url"], headers=alice.headers)
    assert served.content == b"the notes"
    media = factory.settings.media_root
    old_path = media / f"conversations/{old['conversation']}/notes.txt"
    new_path = media / f"conversations/{response.json()['conversation']}/notes.txt"
    assert os.stat(old_path).st_ino == os.stat(new_path).st_ino
