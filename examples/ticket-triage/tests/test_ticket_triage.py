"""ticket-triage run by the service's own API and worker, with a scripted model."""

from agentrun.testing import Harness, Script, answer, call, stop

TICKET = {
    "subject": "Kettle stopped heating",
    "body": "My KT-200 kettle no longer heats since this morning. I bought it last week.",
    "customer_email": "ana@example.com",
}
TRIAGE = {
    "category": "bug",
    "priority": "high",
    "product_sku": "KT-200",
    "summary": "A one-week-old KT-200 kettle no longer heats.",
}


async def test_agents_of_its_type_offer_it(agentrun: Harness) -> None:
    agent = await agentrun.agent("ticket-triage")

    response = await agent.definitions()

    assert response.status_code == 200
    [definition] = response.json()
    assert definition["key"] == "ticket-triage"
    assert set(definition["input_schema"]["properties"]) == {"subject", "body", "customer_email"}


async def test_a_ticket_about_a_product_is_triaged_with_the_product_looked_up(
    agentrun: Harness,
) -> None:
    agent = await agentrun.agent("ticket-triage")
    await agent.add_product("KT-200", name="Kettle 1.7 l", description="Steel electric kettle.")

    run = await agent.run(
        "ticket-triage", TICKET, Script(call("lookup_product", sku="KT-200"), answer(TRIAGE))
    )

    assert run.status == "finished"
    assert run.result == TRIAGE
    assert run.tool_results("lookup_product") == ["KT-200: Kettle 1.7 l. Steel electric kettle."]
    assert run.roles()[-1] == "result"


async def test_a_sku_not_looked_up_goes_back_to_the_model(agentrun: Harness) -> None:
    agent = await agentrun.agent("ticket-triage")
    await agent.add_product("KT-200", name="Kettle 1.7 l")
    script = Script(answer(TRIAGE), call("lookup_product", sku="KT-200"), answer(TRIAGE))

    run = await agent.run("ticket-triage", TICKET, script)

    assert run.status == "finished"
    # The first answer was rejected with the validator's feedback, then the lookup came.
    retries = [m.content for m in run.trace if m.role == "retry"]
    assert len(retries) == 1
    assert "was not confirmed by lookup_product" in retries[0]
    assert run.tool_calls()[-2] == "lookup_product"


async def test_an_unknown_product_cannot_be_claimed(agentrun: Harness) -> None:
    agent = await agentrun.agent("ticket-triage")
    guessed = {**TRIAGE, "product_sku": "KT-999"}
    script = Script(call("lookup_product", sku="KT-999"), *[answer(guessed)] * 3)

    run = await agent.run("ticket-triage", TICKET, script)

    assert run.tool_results("lookup_product") == ["No product with SKU 'KT-999' in the catalog."]
    assert run.status == "failed"
    assert run.failure_code == "max_retries_exceeded"


async def test_a_ticket_without_a_product_needs_no_lookup(agentrun: Harness) -> None:
    agent = await agentrun.agent("ticket-triage")
    triage = {
        "category": "billing",
        "priority": "normal",
        "product_sku": None,
        "summary": "Asks for an invoice.",
    }

    ticket = {"subject": "Invoice", "body": "Please send me the invoice for order 1234."}
    run = await agent.run("ticket-triage", ticket, Script(answer(triage)))

    assert run.status == "finished"
    assert run.result == triage
    assert "lookup_product" not in run.tool_calls()


async def test_the_model_may_give_up(agentrun: Harness) -> None:
    agent = await agentrun.agent("ticket-triage")

    run = await agent.run("ticket-triage", TICKET, Script(stop("The ticket is empty of meaning.")))

    assert run.status == "failed"
    assert run.failure_code == "validation_failed"
    assert run.failure_explanation == "The ticket is empty of meaning."


async def test_a_ticket_without_a_body_is_refused_by_the_api(agentrun: Harness) -> None:
    agent = await agentrun.agent("ticket-triage")

    response = await agent.start("ticket-triage", {"subject": "Help"})

    assert response.status_code == 400
    assert "body" in response.text
