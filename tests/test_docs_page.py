"""The API docs render in a real browser with no internet: every asset is served by us."""

import asyncio
import re

import pytest

from tests.chromium import CHROMIUM, headless

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


async def rendered_dom(url: str, tmp_path: object) -> str:
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *headless(str(tmp_path)),
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return stdout.decode()


async def test_swagger_ui_renders_every_operation_offline(live_url: str, tmp_path: object) -> None:
    dom = await rendered_dom(f"{live_url}/docs", tmp_path)

    assert "Unable to render this definition" not in dom
    for summary in (
        "List the execution types an agent offers",
        "Start an execution",
        "Get an execution",
        "List executions",
    ):
        assert summary in dom


async def test_redoc_renders_offline(live_url: str, tmp_path: object) -> None:
    dom = await rendered_dom(f"{live_url}/redoc", tmp_path)

    assert "Start an execution" in dom
    assert "Authorization" in dom


def text_of(dom: str) -> str:
    """The page's text, tags dropped and white space collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


START_OPERATION = (
    "agentic%20executions/start_execution_api_agents__agent_id__agentic_executions__post"
)
TYPES = ("catalog-enrichment", "invoice-scanning", "structured-task")


async def test_swagger_ui_renders_the_start_body_as_one_member_per_type(
    live_url: str, tmp_path: object
) -> None:
    # Deep-linked: the start operation is rendered expanded, with its body's example.
    dom = await rendered_dom(f"{live_url}/docs#/{START_OPERATION}", tmp_path)
    text = text_of(dom)

    assert "Unable to render this definition" not in dom
    assert '"execution_key" : "catalog-enrichment" , "input" : {' in text
    for key in TYPES:
        assert f"Start {key}" in text


async def test_redoc_renders_the_start_body_as_one_member_per_type(
    live_url: str, tmp_path: object
) -> None:
    text = text_of(await rendered_dom(f"{live_url}/redoc", tmp_path))

    # ReDoc's switch between the union's members, then the first member's typed input.
    assert "execution_key required string " + " ".join(TYPES) in text
    assert "input object (CatalogEnrichmentAgenticExecutionInput)" in text


SUBMIT_BATCH_OPERATION = (
    "agentic%20execution%20batches/"
    "submit_batch_api_agents__agent_id__agentic_execution_batches__post"
)


async def test_swagger_ui_renders_the_batch_submit_body(live_url: str, tmp_path: object) -> None:
    # Its items are the BatchItem component, its limits the Limits one: references resolved.
    dom = await rendered_dom(f"{live_url}/docs#/{SUBMIT_BATCH_OPERATION}", tmp_path)
    text = text_of(dom)

    assert "Unable to render this definition" not in dom
    assert "Could not resolve reference" not in text
    # The example value: a list of items, each with its input (a component's property).
    assert '"items" : [ { "input" :' in text
