"""Uploaded files' text: extracted once at upload, within limits, and read by the agent's tool."""

import asyncio
import dataclasses
import json
import multiprocessing.forkserver
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.conversations.extraction import ExtractionFailed, ExtractionLimits, extract_text
from app.conversations.extraction_process import TextExtractor
from app.conversations.models import ConversationFile
from app.core.config import Settings
from tests.factories import Account, Factory
from tests.pdfs import one_page_pdf, pdf_bomb, pdf_with_pages, text_page
from tests.worker.harness import Script, Worker, answer, call, reload, trace


def limited(extractor: TextExtractor, monkeypatch: pytest.MonkeyPatch, **limits: Any) -> None:
    monkeypatch.setattr(extractor, "limits", dataclasses.replace(extractor.limits, **limits))


def forkserver_children() -> list[int]:
    """Processes the forkserver started that are still there (extraction children)."""
    server = multiprocessing.forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(fields.get("PPid", "0")) == server:
            children.append(int(status.parent.name))
    return children


async def task_agent(factory: Factory) -> tuple[Account, Agent]:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner), agent_type="structured-task", file_upload=True
    )
    return owner, agent


async def start(
    client: AsyncClient, account: Account, agent_id: int, filename: str, data: bytes
) -> dict[str, Any]:
    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data={"execution_key": "structured-task", "input": json.dumps({"instructions": "Go."})},
        files=[("files[]", (filename, data, "application/octet-stream"))],
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def tool_answer(
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    execution: dict[str, Any],
    filename: str,
) -> str:
    """What ``read_file`` answered the model in a run of ``execution``."""
    await worker.run(execution["id"], Script(call("read_file", filename=filename), answer({})))
    assert (await reload(sessionmaker, execution["id"])).status == "finished"
    messages = await trace(sessionmaker, execution["conversation"])
    read = next(m for m in messages if m.role == "tool_result" and m.tool_name == "read_file")
    return read.content


async def test_a_pdf_bomb_is_accepted_and_the_tool_says_which_limit_it_exceeded(
    app: FastAPI,
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limited(app.state.extractor, monkeypatch, cpu_seconds=1)
    owner, agent = await task_agent(factory)

    execution = await start(client, owner, agent.id, "bomb.pdf", pdf_bomb())

    assert await tool_answer(worker, sessionmaker, execution, "bomb.pdf") == (
        "Could not extract text from 'bomb.pdf': it needed more than the 1-second CPU limit."
    )


async def test_no_database_connection_is_held_while_a_file_is_extracted(
    app: FastAPI, client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited(app.state.extractor, monkeypatch, cpu_seconds=2)
    owner, agent = await task_agent(factory)
    pool = app.state.sessionmaker.kw["bind"].pool

    upload = asyncio.ensure_future(start(client, owner, agent.id, "bomb.pdf", pdf_bomb()))
    await asyncio.sleep(1)  # the bomb's extraction runs
    held = pool.checkedout()
    await upload

    assert held == 0


async def test_text_is_extracted_once_at_upload_and_read_from_the_row(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    owner, agent = await task_agent(factory)
    execution = await start(client, owner, agent.id, "sheet.pdf", one_page_pdf("SKU-001 Kettle"))
    # The run never opens the file: its text was kept at upload.
    (settings.media_root / execution["files"][0]["file_url"].removeprefix("/media/")).unlink()

    assert await tool_answer(worker, sessionmaker, execution, "sheet.pdf") == (
        "[page 1]\nSKU-001 Kettle"
    )


async def test_json_nested_100000_deep_is_accepted_and_read_as_sent(
    client: AsyncClient,
    factory: Factory,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner, agent = await task_agent(factory)
    deep = "[" * 100_000 + "]" * 100_000

    execution = await start(client, owner, agent.id, "deep.json", deep.encode())

    text = f"[JSON nested too deeply to re-indent; shown as uploaded]\n{deep}"
    assert await tool_answer(worker, sessionmaker, execution, "deep.json") == (
        f"{text[:20_000]}\n\n[characters 0-20000 of {len(text)}; read on with offset=20000]"
    )


async def test_a_file_stored_before_extraction_at_upload_is_extracted_once_when_read(
    factory: Factory,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    owner, agent = await task_agent(factory)
    row = await factory.execution(agent, owner, input={"instructions": "Go."})
    key = f"conversations/{row.conversation_id}/old.pdf"
    (settings.media_root / key).parent.mkdir(parents=True)
    (settings.media_root / key).write_bytes(one_page_pdf("Old text"))
    await factory._save(
        ConversationFile(conversation_id=row.conversation_id, filename="old.pdf",
                         content_type="application/pdf", size=1, sha256="0" * 64,
                         storage_key=key)
    )  # fmt: skip
    execution = {"id": row.id, "conversation": row.conversation_id}

    assert await tool_answer(worker, sessionmaker, execution, "old.pdf") == "[page 1]\nOld text"
    async with sessionmaker() as session:
        kept = await session.scalar(
            select(ConversationFile.extracted_text).where(ConversationFile.storage_key == key)
        )
    assert kept == "[page 1]\nOld text"


async def test_an_extraction_over_its_time_is_killed_not_abandoned(settings: Settings) -> None:
    limits = dataclasses.replace(
        ExtractionLimits.from_settings(settings), timeout_seconds=0.5, cpu_seconds=60
    )
    extractor = TextExtractor(limits, concurrency=1)
    try:
        extracted = await extractor.extract(pdf_bomb(), "application/pdf", user_id=1)
    finally:
        extractor.close()

    assert extracted.error == "it took longer than the 0.5-second limit"
    assert forkserver_children() == []


async def test_one_users_files_do_not_hold_another_users_extraction(settings: Settings) -> None:
    limits = dataclasses.replace(ExtractionLimits.from_settings(settings), cpu_seconds=1)
    extractor = TextExtractor(limits, concurrency=2)
    try:
        bombs = [
            asyncio.ensure_future(extractor.extract(pdf_bomb(), "application/pdf", user_id=1))
            for _ in range(3)
        ]
        await asyncio.sleep(0.1)
        sheet = asyncio.ensure_future(
            extractor.extract(one_page_pdf("Mine"), "application/pdf", user_id=2)
        )
        done, _ = await asyncio.wait([sheet, *bombs], return_when=asyncio.FIRST_COMPLETED)
        results = await asyncio.gather(*bombs)
    finally:
        extractor.close()

    # Three bombs of one user and two slots: the other user's file got the second slot.
    assert done == {sheet}
    assert sheet.result().text == "[page 1]\nMine"
    assert {r.error for r in results} == {"it needed more than the 1-second CPU limit"}


def test_pages_and_characters_past_the_limits_are_cut_with_a_note(settings: Settings) -> None:
    limits = dataclasses.replace(
        ExtractionLimits.from_settings(settings), max_pages=2, max_chars=30
    )
    three_pages = pdf_with_pages(text_page("one"), text_page("two"), text_page("three"))

    assert extract_text(three_pages, "application/pdf", limits) == (
        "[page 1]\none\n\n[page 2]\ntwo\n\n[o\n\n[text cut at 30 characters, the extraction "
        "limit; the rest of the file is not shown]"
    )
    assert extract_text(b"x" * 40, "text/plain", limits).startswith("x" * 30 + "\n\n[text cut")


def test_a_stream_decompressing_past_the_limit_is_refused(settings: Settings) -> None:
    limits = dataclasses.replace(
        ExtractionLimits.from_settings(settings), max_decompressed_bytes=100_000
    )

    with pytest.raises(ExtractionFailed, match="decompressed bytes a stream is 100000"):
        extract_text(pdf_bomb(1_000_000), "application/pdf", limits)
