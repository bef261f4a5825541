"""The console's batch list and page: counts and progress, cancel (with CSRF), the results
download, another user's batch a 404 page."""

import json

from httpx import AsyncClient

from tests.console.test_console_pages import csrf_of, sign_in
from tests.factories import Factory


async def test_a_batch_is_listed_shown_cancelled_and_its_results_downloaded(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    submitted = await client.post(
        f"/api/agents/{agent.id}/agentic-execution-batches/",
        json={
            "execution_key": "catalog-enrichment",
            "items": [{"input": {"skus": [f"S{n}"]}} for n in range(3)],
        },
        headers=alice.headers,
    )
    batch_id = submitted.json()["id"]

    await sign_in(client, alice)
    listed = await client.get("/ui/batches/")
    page = await client.get(f"/ui/batches/{batch_id}/")

    assert listed.status_code == page.status_code == 200
    assert f"/ui/batches/{batch_id}/" in listed.text
    assert "0/3" in listed.text
    assert '<dd data-count="pending">3</dd>' in page.text
    assert 'http-equiv="refresh"' in page.text
    assert f"/ui/executions/?batch={batch_id}" in page.text
    items = await client.get(f"/ui/executions/?batch={batch_id}")
    assert items.text.count("/ui/executions/") >= 3

    forged = await client.post(f"/ui/batches/{batch_id}/cancel")
    cancelled = await client.post(
        f"/ui/batches/{batch_id}/cancel", data={"csrf_token": csrf_of(page)}
    )
    after = await client.get(f"/ui/batches/{batch_id}/")
    download = await client.get(f"/ui/batches/{batch_id}/results")

    assert forged.status_code == 403
    assert cancelled.status_code == 303
    assert '<dd data-count="failed">3</dd>' in after.text
    assert 'http-equiv="refresh"' not in after.text
    assert download.headers["content-disposition"] == (
        f'attachment; filename="batch-{batch_id}.jsonl"'
    )
    lines = [json.loads(line) for line in download.text.splitlines()]
    assert [(line["item"], line["failure_code"]) for line in lines] == [
        (0, "cancelled"), (1, "cancelled"), (2, "cancelled"),
    ]  # fmt: skip

    client.cookies.clear()
    await sign_in(client, bob)
    assert (await client.get(f"/ui/batches/{batch_id}/")).status_code == 404
    assert (await client.get(f"/ui/batches/{batch_id}/results")).status_code == 404
    assert f"/ui/batches/{batch_id}/" not in (await client.get("/ui/batches/")).text
