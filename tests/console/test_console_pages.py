"""The console's pages over HTTP: sign in, what a user may see, CSRF, the generated form."""

import re

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.cli.demo import DemoSetup
from app.cli.dev_stack import _welcome
from app.core.config import Settings
from tests.factories import Account, Factory


def csrf_of(page: Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(client: AsyncClient, account: Account) -> None:
    page = await client.get("/ui/sign-in")
    signed = await client.post(
        "/ui/sign-in", data={"token": account.token, "csrf_token": csrf_of(page)}
    )
    assert signed.status_code == 303, signed.text


async def test_pages_need_a_session_and_a_token_signs_in(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()

    before = await client.get("/ui/executions/")
    await sign_in(client, alice)
    after = await client.get("/ui/executions/")

    assert before.status_code == 303
    assert before.headers["location"].startswith("http://testserver/ui/sign-in")
    assert after.status_code == 200
    assert "alice" in after.text or alice.user.username in after.text
    cookie = client.cookies.jar
    session = next(c for c in cookie if c.name == "agentrun_console")
    # The cookie is not the key: the API does not take it.
    assert alice.token not in session.value
    assert session.path == "/ui"


async def test_a_wrong_token_is_refused_and_a_post_without_csrf_is_403(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    page = await client.get("/ui/sign-in")
    wrong = await client.post("/ui/sign-in", data={"token": "ar_nope", "csrf_token": csrf_of(page)})
    forged = await client.post("/ui/sign-in", data={"token": alice.token})

    assert wrong.status_code == 401
    assert "unknown or revoked" in wrong.text
    assert forged.status_code == 403
    assert "agentrun_console" not in forged.cookies


async def test_another_users_execution_is_a_404_page(client: AsyncClient, factory: Factory) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice)

    await sign_in(client, bob)
    page = await client.get(f"/ui/executions/{execution.id}/")
    events = await client.get(f"/ui/executions/{execution.id}/events")

    assert page.status_code == 404
    assert "Not found" in page.text
    assert "text/html" in page.headers["content-type"]
    assert events.status_code == 404


async def test_the_start_form_shows_the_apis_field_errors(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    await sign_in(client, alice)
    url = f"/ui/agents/{agent.id}/start/structured-task/"
    form = await client.get(url)

    refused = await client.post(
        url,
        data={
            "csrf_token": csrf_of(form),
            "input.instructions": "",
            "input.output_schema": "{not json",
        },
    )

    assert form.status_code == 200
    assert 'name="input.instructions"' in form.text
    assert refused.status_code == 400
    assert "Invalid JSON" in refused.text


FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "api.example.com",
    "X-Forwarded-Prefix": "/agentrun",
}


async def test_behind_a_gateway_links_and_cookies_carry_its_prefix_and_scheme(
    app: FastAPI, factory: Factory
) -> None:
    alice = await factory.account()
    transport = ASGITransport(app=app, client=("127.0.0.1", 1234))
    async with AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as gateway:
        page = await gateway.get("/ui/sign-in", headers=FORWARDED)
        # The gateway's browser sends it back (Secure, under /agentrun/ui); this client would not.
        csrf_cookie = page.headers["set-cookie"].split(";")[0]
        gateway.cookies.clear()
        signed = await gateway.post(
            "/ui/sign-in",
            data={"token": alice.token, "csrf_token": csrf_of(page)},
            headers={**FORWARDED, "Cookie": csrf_cookie},
        )

    assert 'action="https://api.example.com/agentrun/ui/sign-in"' in page.text
    assert "https://api.example.com/agentrun/ui/static/console.css" in page.text
    assert signed.status_code == 303
    assert signed.headers["location"] == "https://api.example.com/agentrun/ui/executions/"
    session = signed.headers["set-cookie"]
    assert "Path=/agentrun/ui" in session
    assert "HttpOnly" in session
    assert "SameSite=strict" in session
    assert "Secure" in session


def test_make_dev_prints_the_console_beside_the_token(settings: Settings) -> None:
    demo = DemoSetup(token="ar_demo", catalog_agent_id=1, task_agent_id=2, invoice_agent_id=3)

    lines = _welcome(settings, demo, "http://127.0.0.1:8000", []).splitlines()

    token_line = lines.index("Demo admin token: ar_demo")
    assert "http://127.0.0.1:8000/ui/" in lines[token_line + 1]


async def test_the_list_filters_as_the_api_does_and_files_download(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        data={"execution_key": "catalog-enrichment"},
        files=[("files[]", ("notes.txt", b"Blue cotton shirt.", "text/plain"))],
        headers=alice.headers,
    )
    failed = await factory.execution(agent, alice, status="failed", failure_code="runtime_error")
    await sign_in(client, alice)

    only_failed = await client.get("/ui/executions/?status=failed")
    bad_filter = await client.get("/ui/executions/?status=lost")
    page = await client.get(f"/ui/executions/{started.json()['id']}/")
    link = re.search(r'href="http://testserver(/ui/files/[^"]+)" download', page.text)
    assert link, page.text
    download = await client.get(link.group(1))

    assert f'data-execution-id="{failed.id}"' in only_failed.text
    assert f'data-execution-id="{started.json()["id"]}"' not in only_failed.text
    assert "runtime_error" in only_failed.text
    assert bad_filter.status_code == 400
    assert download.status_code == 200
    assert download.content == b"Blue cotton shirt."
    assert download.headers["content-disposition"].startswith("attachment")


async def test_ids_no_row_can_have_are_a_400_that_names_the_field(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset(admin)
    await sign_in(client, admin)

    # Five thousand digits (Python refuses to convert them) and an Arabic-Indic three.
    long_filter = await client.get("/ui/executions/", params={"agent": "1" * 5000})
    page = await client.get("/ui/datasets/")
    member = await client.post(
        f"/ui/datasets/{dataset.id}/members",
        data={"user_id": "\u0663", "csrf_token": csrf_of(page)},
    )

    assert long_filter.status_code == 400
    assert "Expected the number of one." in long_filter.text
    assert member.status_code == 400
    assert "Choose one." in member.text


async def test_the_start_form_takes_files_for_an_agent_that_accepts_them(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)
    await sign_in(client, alice)
    url = f"/ui/agents/{agent.id}/start/catalog-enrichment/"
    form = await client.get(url)

    started = await client.post(
        url,
        data={"csrf_token": csrf_of(form), "input.skus": "A-1\nA-2"},
        files=[("files", ("notes.txt", b"Blue cotton shirt.", "text/plain"))],
    )
    refused = await client.post(
        url,
        data={"csrf_token": csrf_of(form)},
        files=[("files", ("run.exe", b"MZ\x90\x00binary", "application/octet-stream"))],
    )

    assert 'type="file"' in form.text
    assert started.status_code == 303, started.text
    execution = await client.get(
        started.headers["location"].replace("/ui/executions/", "/api/agentic-executions/"),
        headers=alice.headers,
    )
    assert execution.json()["input"]["skus"] == ["A-1", "A-2"]
    assert [f["filename"] for f in execution.json()["files"]] == ["notes.txt"]
    assert refused.status_code == 400
    assert "files:" in refused.text


async def test_a_webhook_endpoint_is_disabled_and_its_secret_rotated_from_its_page(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    await sign_in(client, alice)
    listing = await client.get("/ui/webhooks/")
    created = await client.post(
        "/ui/webhooks/",
        data={
            "csrf_token": csrf_of(listing),
            "url": "http://127.0.0.1:9/hook",
            "events": ["execution.finished"],
        },
    )
    secret = re.search(r'<code class="secret">([^<]+)</code>', created.text)
    assert secret, created.text

    disabled = await client.post(
        "/ui/webhooks/1/enabled", data={"csrf_token": csrf_of(created), "enabled": "false"}
    )
    rotated = await client.post("/ui/webhooks/1/rotate", data={"csrf_token": csrf_of(created)})
    endpoint = await client.get("/api/webhooks/1/", headers=alice.headers)

    assert disabled.status_code == 303
    assert endpoint.json()["enabled"] is False
    new_secret = re.search(r'<code class="secret">([^<]+)</code>', rotated.text)
    assert new_secret
    assert new_secret.group(1) != secret.group(1)
    assert "previous one signs beside it" in rotated.text
