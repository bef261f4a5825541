"""Multipart starts with files, file checks, and serving the stored files."""

import json
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.conversations.models import Conversation, ConversationFile
from app.core.config import Settings
from app.executions.models import AgenticExecution
from tests.factories import Account, Factory

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def upload_agent(factory: Factory, *, file_upload: bool = True) -> tuple[Account, int]:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=file_upload)
    return alice, agent.id


def form(input_: object = None) -> dict[str, str]:
    data = {"execution_key": "catalog-enrichment"}
    if input_ is not None:
        data["input"] = input_ if isinstance(input_, str) else json.dumps(input_)
    return data


async def nothing_stored(session: AsyncSession, settings: Settings) -> bool:
    executions = await session.scalar(select(func.count()).select_from(AgenticExecution))
    conversations = await session.scalar(select(func.count()).select_from(Conversation))
    files = list(Path(settings.media_root).rglob("*.*"))
    return executions == conversations == 0 and files == []


async def test_multipart_start_stores_files_and_lists_them(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice, agent_id = await upload_agent(factory)

    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form({"additional_instructions": "Focus on products missing a description."}),
        files=[("files[]", ("product_data.pdf", PDF, "application/pdf"))],
        headers=alice.headers,
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["input"] == {
        "additional_instructions": "Focus on products missing a description.",
        "skus": None,
    }
    [file] = body["files"]
    assert file == {
        "id": file["id"],
        "filename": "product_data.pdf",
        "file_url": f"/media/conversations/{body['conversation']}/product_data.pdf",
        "content_type": "application/pdf",
    }
    stored = Path(settings.media_root) / "conversations" / str(body["conversation"])
    assert (stored / "product_data.pdf").read_bytes() == PDF

    detail = await client.get(f"/api/agentic-executions/{body['id']}/", headers=alice.headers)
    assert detail.json()["files"] == body["files"]


async def test_multipart_accepts_the_reference_clients_files_field_and_missing_input(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await upload_agent(factory)

    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[
            ("files", ("notes.txt", b"SKU-001 is blue", "text/plain")),
            ("files", ("photo.png", PNG, "image/png")),
        ],
        headers=alice.headers,
    )

    assert response.status_code == 202, response.text
    assert response.json()["input"] == {"additional_instructions": None, "skus": None}
    assert [(f["filename"], f["content_type"]) for f in response.json()["files"]] == [
        ("notes.txt", "text/plain"),
        ("photo.png", "image/png"),
    ]


async def test_same_name_twice_and_hostile_names_never_overwrite_or_escape(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice, agent_id = await upload_agent(factory)

    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[
            ("files[]", ("a.txt", b"first", "text/plain")),
            ("files[]", ("a.txt", b"second", "text/plain")),
            ("files[]", ("../../../etc/evil name.txt", b"third", "text/plain")),
        ],
        headers=alice.headers,
    )

    assert response.status_code == 202, response.text
    names = [f["filename"] for f in response.json()["files"]]
    assert names == ["a.txt", "a_1.txt", "evil_name.txt"]
    folder = Path(settings.media_root) / "conversations" / str(response.json()["conversation"])
    assert [(folder / n).read_bytes() for n in names] == [b"first", b"second", b"third"]


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("tool.exe", b"MZ\x90\x00", "File type '.exe' is not supported"),
        ("fake.pdf", b"just text", "is not a valid PDF file"),
        ("fake.png", PDF, "is not a valid PNG file"),
        ("binary.txt", b"\x00\x01\x02", "is not UTF-8 text"),
        ("broken.json", b"{nope", "is not valid JSON"),
    ],
)
async def test_files_are_checked_by_content_and_refused_with_400(
    client: AsyncClient,
    factory: Factory,
    session: AsyncSession,
    settings: Settings,
    filename: str,
    content: bytes,
    message: str,
) -> None:
    alice, agent_id = await upload_agent(factory)

    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[("files[]", (filename, content, "application/pdf"))],
        headers=alice.headers,
    )

    assert response.status_code == 400
    [error] = response.json()["files"]
    assert message in error
    assert await nothing_stored(session, settings)


@pytest.mark.parametrize("filename", ["empty.pdf", "empty.png", "empty.jpg", "empty.webp"])
async def test_empty_binary_files_are_400(
    client: AsyncClient, factory: Factory, session: AsyncSession, settings: Settings, filename: str
) -> None:
    alice, agent_id = await upload_agent(factory)

    response = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[("files[]", (filename, b"", "application/octet-stream"))],
        headers=alice.headers,
    )

    assert response.status_code == 400
    extension = filename.rsplit(".", 1)[1].upper()
    message = f"{filename!r} is empty: not a valid {extension} file."
    assert response.json() == {"detail": message, "files": [message]}
    assert await nothing_stored(session, settings)


async def test_files_for_an_agent_without_file_upload_are_400(
    client: AsyncClient, factory: Factory, session: AsyncSession, settings: Settings
) -> None:
    alice, agent_id = await upload_agent(factory, file_upload=False)

    with_file = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[("files[]", ("a.txt", b"hello", "text/plain"))],
        headers=alice.headers,
    )

    assert with_file.status_code == 400
    assert with_file.json() == {
        "detail": "This agent does not support file uploads.",
        "files": ["This agent does not support file uploads."],
    }
    assert await nothing_stored(session, settings)


async def test_too_large_file_is_413_and_too_many_files_400(
    client: AsyncClient,
    factory: Factory,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, agent_id = await upload_agent(factory)
    monkeypatch.setattr(settings, "max_upload_bytes", 10)
    monkeypatch.setattr(settings, "max_upload_files", 2)

    too_large = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[("files[]", ("a.txt", b"x" * 11, "text/plain"))],
        headers=alice.headers,
    )
    too_many = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[("files[]", (f"{i}.txt", b"x", "text/plain")) for i in range(3)],
        headers=alice.headers,
    )

    assert too_large.status_code == 413
    assert "larger than the limit of 10 bytes" in too_large.json()["detail"]
    assert too_many.status_code == 400
    assert too_many.json()["files"] == ["At most 2 files per execution."]
    assert await nothing_stored(session, settings)


async def test_multipart_input_errors_are_400(client: AsyncClient, factory: Factory) -> None:
    alice, agent_id = await upload_agent(factory)
    endpoint = f"/api/agents/{agent_id}/agentic-executions/"

    bad_json = await client.post(endpoint, data=form("{not json"), headers=alice.headers,
                                 files=[("files[]", ("a.txt", b"x", "text/plain"))])  # fmt: skip
    bad_field = await client.post(endpoint, data=form({"skus": 5}), headers=alice.headers,
                                  files=[("files[]", ("a.txt", b"x", "text/plain"))])  # fmt: skip
    no_key = await client.post(endpoint, data={"input": "{}"}, headers=alice.headers,
                               files=[("files[]", ("a.txt", b"x", "text/plain"))])  # fmt: skip

    assert bad_json.status_code == bad_field.status_code == no_key.status_code == 400
    [message] = bad_json.json()["input"]
    assert message.startswith("Invalid JSON: ")
    assert bad_field.json() == {"input": {"skus": "Input should be a valid list"}}
    assert no_key.json()["execution_key"] == ["This field is required."]


async def test_media_is_served_to_its_owner_only(client: AsyncClient, factory: Factory) -> None:
    alice, agent_id = await upload_agent(factory)
    bob, admin = await factory.account(), await factory.account(admin=True)
    started = await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        data=form(),
        files=[("files[]", ("product_data.pdf", PDF, "application/pdf"))],
        headers=alice.headers,
    )
    file_url = started.json()["files"][0]["file_url"]

    own = await client.get(file_url, headers=alice.headers)
    by_admin = await client.get(file_url, headers=admin.headers)
    foreign = await client.get(file_url, headers=bob.headers)
    anonymous = await client.get(file_url)
    missing = await client.get(file_url.replace("product_data", "other"), headers=alice.headers)

    assert own.status_code == by_admin.status_code == 200
    assert own.content == PDF
    assert own.headers["content-type"] == "application/pdf"
    assert own.headers["content-disposition"].startswith("attachment")
    assert own.headers["x-content-type-options"] == "nosniff"
    assert foreign.status_code == missing.status_code == 404
    assert anonymous.status_code == 401


async def test_files_of_a_start_whose_commit_fails_are_removed(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    alice, agent_id = await upload_agent(factory)
    # PostgreSQL refuses the transaction at COMMIT, after every statement of the start ran
    # (as when the server shuts down at that moment): a deferred check that always fails.
    async with engine.begin() as connection:
        await connection.execute(text(REFUSE_AT_COMMIT))
        await connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON conversation_files "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()"
            )
        )
    try:
        response = await client.post(
            f"/api/agents/{agent_id}/agentic-executions/",
            data=form({}),
            files=[("files[]", ("product_data.pdf", PDF, "application/pdf"))],
            headers=alice.headers,
        )
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TRIGGER refuse_at_commit ON conversation_files"))
            await connection.execute(text("DROP FUNCTION refuse_at_commit()"))

    assert response.status_code == 503, response.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ConversationFile)) == 0
    left = [path for path in Path(settings.media_root).rglob("*") if path.is_file()]
    assert left == []


REFUSE_AT_COMMIT = """
CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'admin_shutdown';
END $$
"""
