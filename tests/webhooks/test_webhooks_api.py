"""/api/webhooks/: endpoints of their owner, a secret shown once, rotation, refused URLs."""

import base64

import pytest
from httpx import AsyncClient

from app.core.config import Settings
from tests.factories import Factory, client_with_settings

HOOK = "http://127.0.0.1:9/hook"


async def test_an_endpoint_is_created_with_a_secret_shown_once(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()

    created = await client.post(
        "/api/webhooks/",
        json={"url": HOOK, "events": ["execution.finished", "execution.failed"]},
        headers=alice.headers,
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["url"] == HOOK
    assert body["events"] == ["execution.failed", "execution.finished"]
    assert (body["agent_id"], body["enabled"]) == (None, True)
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
    read = await client.get(f"/api/webhooks/{body['id']}/", headers=alice.headers)
    assert read.status_code == 200
    assert "secret" not in read.json()
    listed = await client.get("/api/webhooks/", headers=alice.headers)
    assert [e["id"] for e in listed.json()["results"]] == [body["id"]]


async def test_only_the_owner_sees_changes_and_deletes_an_endpoint(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    bob = await factory.account()
    created = await client.post(
        "/api/webhooks/", json={"url": HOOK, "events": ["execution.started"]}, headers=alice.headers
    )
    url = f"/api/webhooks/{created.json()['id']}/"

    assert (await client.get(url, headers=bob.headers)).status_code == 404
    assert (await client.delete(url, headers=bob.headers)).status_code == 404
    assert (await client.get("/api/webhooks/", headers=bob.headers)).json()["count"] == 0
    changed = await client.patch(
        url,
        json={"events": ["execution.cancelled"], "enabled": False, "url": HOOK + "2"},
        headers=alice.headers,
    )
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["enabled"]) == (["execution.cancelled"], False)
    assert changed.json()["url"] == HOOK + "2"
    assert (await client.delete(url, headers=alice.headers)).status_code == 204
    assert (await client.get(url, headers=alice.headers)).status_code == 404


async def test_rotating_answers_a_new_secret(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.account()
    created = await client.post(
        "/api/webhooks/", json={"url": HOOK, "events": ["execution.started"]}, headers=alice.headers
    )

    rotated = await client.post(
        f"/api/webhooks/{created.json()['id']}/rotate-secret/", headers=alice.headers
    )

    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created.json()["secret"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": HOOK, "events": ["execution.exploded"]}, "events.0"),
        ({"url": HOOK, "events": []}, "events"),
        ({"url": HOOK, "events": ["execution.started"], "agent_id": 999}, "agent_id"),
        ({"url": "ftp://example.com/hook", "events": ["execution.started"]}, "url"),
        ({"url": "not a url", "events": ["execution.started"]}, "url"),
    ],
)
async def test_bad_endpoints_are_refused_with_the_field_named(
    client: AsyncClient, factory: Factory, body: dict[str, object], field: str
) -> None:
    alice = await factory.account()

    response = await client.post("/api/webhooks/", json=body, headers=alice.headers)

    assert response.status_code == 400, response.text
    assert field in response.json()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/",
        "https://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
async def test_urls_of_private_networks_are_refused(
    settings: Settings, factory: Factory, url: str
) -> None:
    alice = await factory.account()
    async with client_with_settings(settings, webhook_allow_private_networks=False) as client:
        created = await client.post(
            "/api/webhooks/",
            json={"url": url, "events": ["execution.started"]},
            headers=alice.headers,
        )
        assert created.status_code == 400, created.text
        assert "url" in created.json()

        allowed = await client.post(
            "/api/webhooks/",
            json={"url": "http://93.184.215.14/hook", "events": ["execution.started"]},
            headers=alice.headers,
        )
        assert allowed.status_code == 201
        changed = await client.patch(
            f"/api/webhooks/{allowed.json()['id']}/", json={"url": url}, headers=alice.headers
        )
        assert changed.status_code == 400
