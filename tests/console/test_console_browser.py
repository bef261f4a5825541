"""The console in headless Chromium, as a person uses it: sign in, start an execution from the
generated form, watch it finish live, cancel another, see a webhook delivery; another user
gets the 404 page; a POST without the CSRF token is refused. Each page is photographed at
desktop and phone width into build/console-screenshots/."""

import json

import pytest
from httpx import AsyncClient

from tests.chromium import CHROMIUM
from tests.console.browser import Page
from tests.factories import Account, Factory
from tests.webhook_receiver import Receiver
from tests.worker.harness import Script, Worker, answer, call
from workers.background.webhook_delivery import WebhookSender

# As the docs check (tests/test_docs_page.py): CI installs Chromium.
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


async def sign_in(page: Page, live_url: str, account: Account) -> None:
    await page.goto(f"{live_url}/ui/executions/")
    assert await page.evaluate("location.pathname") == "/ui/sign-in"
    await page.fill("#token", account.token)
    await page.submit("form.stacked button[type=submit]")
    assert await page.evaluate("location.pathname") == "/ui/executions/"


async def start_from_form(page: Page, live_url: str, agent_name: str, instructions: str) -> int:
    await page.goto(f"{live_url}/ui/start/")
    await page.click_link("Structured Task")
    await page.fill("#field-instructions", instructions)
    await page.submit(".start-form button[type=submit]")
    path = str(await page.evaluate("location.pathname"))
    assert path.startswith("/ui/executions/"), await page.text()
    return int(path.rstrip("/").rsplit("/", 1)[-1])


STATUS = "document.querySelector('[data-execution]').dataset.status"


async def test_sign_in_start_from_the_form_watch_it_finish_live_and_cancel_another(
    page: Page, live_url: str, factory: Factory, worker: Worker, client: AsyncClient
) -> None:
    alice = await factory.account(username="alice")
    agent = await factory.agent(
        await factory.dataset(alice), agent_type="structured-task", name="Tasks"
    )
    await page.goto(f"{live_url}/ui/")
    await page.screenshot("sign-in")
    # The token field has the focus on arrival; Tab moves on to the button, its focus drawn.
    focused = "document.activeElement"
    assert await page.evaluate(f"{focused}.id") == "token"
    await page.press_tab()
    assert await page.evaluate(f"{focused}.textContent") == "Sign in"
    assert await page.evaluate(f"getComputedStyle({focused}).outlineStyle") == "solid"
    await sign_in(page, live_url, alice)

    await page.goto(f"{live_url}/ui/start/")
    await page.screenshot("start")
    await page.click_link("Structured Task")
    await page.fill("#field-instructions", "Say hi.")
    await page.screenshot("start-form")
    await page.submit(".start-form button[type=submit]")
    execution_id = int(str(await page.evaluate("location.pathname")).split("/")[3])
    assert await page.evaluate(STATUS) == "pending"
    # Set in this document: still there at the end means the page was never reloaded.
    await page.evaluate("window.__same_document = true")

    outcome = await worker.run(execution_id, Script(call("lookup", sku="A-1"), answer({"hi": 1})))

    assert outcome == "finished"
    assert await page.wait_for(f"{STATUS} === 'finished'")
    assert await page.evaluate("window.__same_document") is True
    assert json.loads(
        await page.evaluate("document.querySelector('[data-field=result]').textContent")
    ) == {"hi": 1}
    roles = await page.evaluate(
        "Array.from(document.querySelectorAll('#trace .role')).map(r => r.textContent)"
    )
    assert {"tool call", "retry"} <= set(roles)
    assert await page.evaluate("document.querySelector('[data-hide-when-terminal]').hidden")
    await page.screenshot("execution")
    # Its Retry button appeared as it ended; it starts a new execution that says what it retries.
    assert not await page.evaluate("document.querySelector('[data-show-when-terminal]').hidden")
    await page.submit("[data-show-when-terminal] button")
    retried_path = str(await page.evaluate("location.pathname"))
    assert retried_path != f"/ui/executions/{execution_id}/"
    retried_id = int(retried_path.split("/")[3])
    retried = await client.get(f"/api/agentic-executions/{retried_id}/", headers=alice.headers)
    assert retried.json()["retry_of"] == execution_id

    second = await start_from_form(page, live_url, agent.name, "Count to three.")
    await page.submit("[data-hide-when-terminal] button")

    assert await page.evaluate("location.pathname") == f"/ui/executions/{second}/"
    assert await page.evaluate(STATUS) == "failed"
    assert "cancelled" in await page.text("[data-field=failure]")
    assert "Cancelled by alice." in await page.text("[data-field=failure]")
    await page.screenshot("execution-cancelled")

    # The list, newest first, and a third execution appearing in it while it is open.
    await page.goto(f"{live_url}/ui/executions/")
    rows = "Array.from(document.querySelectorAll('tr[data-execution-id]')).map(r => r.innerText)"
    listed = await page.evaluate(rows)
    assert [row.split()[0] for row in listed] == [
        f"#{second}",
        f"#{retried_id}",
        f"#{execution_id}",
    ]
    assert "cancelled" in listed[0]
    assert "finished" in listed[2]
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json={"execution_key": "structured-task", "input": {"instructions": "Once more."}},
        headers=alice.headers,
    )
    assert started.status_code == 202, started.text
    third = started.json()["id"]
    assert await page.wait_for(f"!!document.querySelector('tr[data-execution-id=\"{third}\"]')")
    await page.screenshot("executions")


async def test_a_webhook_endpoint_added_in_the_console_shows_its_delivery(
    page: Page,
    live_url: str,
    factory: Factory,
    worker: Worker,
    client: AsyncClient,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    alice = await factory.account(username="alice")
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    await sign_in(page, live_url, alice)
    await page.goto(f"{live_url}/ui/webhooks/")
    await page.fill("#webhook-url", receiver.url)
    await page.submit("form.stacked button[type=submit]")
    assert "shown this once" in await page.text()
    endpoint_url = str(await page.evaluate("location.href"))
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json={"execution_key": "structured-task", "input": {"instructions": "Say hi."}},
        headers=alice.headers,
    )
    await worker.run(started.json()["id"], Script(answer({"hi": 1})))

    await sender.run_once()
    await sender.settle()
    await receiver.until(2)

    await page.goto(f"{live_url}/ui/webhooks/")
    await page.screenshot("webhooks")
    await page.click_link(receiver.url)
    deliveries = await page.evaluate(
        "Array.from(document.querySelectorAll('tr[data-delivery-id]')).map(r => r.innerText)"
    )
    assert len(deliveries) == 2
    assert all("delivered" in row and "200" in row for row in deliveries)
    assert any("execution.finished" in row for row in deliveries)
    assert endpoint_url.endswith("/ui/webhooks/")
    await page.screenshot("webhook")

    await page.submit("tr[data-delivery-id] form button")
    redelivered = await page.evaluate("document.querySelector('tr[data-delivery-id]').innerText")
    assert "pending" in redelivered


async def test_another_users_execution_is_the_404_page_and_a_post_without_csrf_is_refused(
    page: Page, live_url: str, factory: Factory
) -> None:
    alice, bob = await factory.account(username="alice"), await factory.account(username="bob")
    alices = await factory.execution(await factory.agent(await factory.dataset(alice)), alice)
    bobs = await factory.execution(await factory.agent(await factory.dataset(bob)), bob)
    await sign_in(page, live_url, bob)

    await page.goto(f"{live_url}/ui/executions/{alices.id}/")
    status = await page.evaluate("fetch(location.href).then(r => r.status)")
    assert status == 404
    assert "Not found" in await page.text("h1")
    await page.screenshot("not-found")

    await page.goto(f"{live_url}/ui/executions/{bobs.id}/")
    forged = await page.evaluate(
        f"fetch('/ui/executions/{bobs.id}/cancel', {{method: 'POST', "
        "body: new URLSearchParams({})}).then(r => r.status)"
    )
    assert forged == 403
    await page.goto(f"{live_url}/ui/executions/{bobs.id}/")
    assert await page.evaluate(STATUS) == "pending"

    await page.submit(".sign-out button")
    assert await page.evaluate("location.pathname") == "/ui/sign-in"
    await page.goto(f"{live_url}/ui/executions/{bobs.id}/")
    assert await page.evaluate("location.pathname") == "/ui/sign-in"


async def test_an_admin_manages_users_tokens_datasets_and_agents(
    page: Page, live_url: str, factory: Factory
) -> None:
    admin = await factory.account(admin=True, username="root")
    await factory.agent(await factory.dataset(admin, name="Shop"), name="Enricher")
    await sign_in(page, live_url, admin)

    await page.goto(f"{live_url}/ui/users/")
    await page.fill("#username", "carol")
    await page.submit("form.stacked button[type=submit]")
    assert "User carol created" in await page.text()
    await page.screenshot("users")
    await page.click_link("Tokens of carol")
    await page.screenshot("tokens")
    await page.goto(f"{live_url}/ui/datasets/")
    await page.evaluate(
        "Array.from(document.querySelectorAll('#member-1 option'))"
        ".find(o => o.textContent === 'carol').selected = true"
    )
    await page.submit("form.inline button")
    assert "carol" in await page.text(".members")
    await page.screenshot("datasets")
    await page.submit(".members form button")
    assert "carol" not in await page.text(".members")
    await page.goto(f"{live_url}/ui/agents/")
    await page.fill("#agent-name", "Tasks")
    await page.submit("form.stacked button[type=submit]")
    assert "Tasks" in await page.text("table")
    await page.screenshot("agents")
