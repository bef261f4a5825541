"""What `make dev` sets up: the demo data, and which model it picks."""

import os
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.demo import seed_demo
from app.cli.dev_stack import default_model, use_encryption_key
from app.core.config import Settings
from app.core.encryption import new_key


async def test_demo_seed_gives_a_working_token_and_agents_and_can_run_again(
    session: AsyncSession, client: AsyncClient
) -> None:
    first = await seed_demo(session)
    again = await seed_demo(session)
    await session.commit()  # the caller owns the transaction (app/core/db.py)
    headers = {"Authorization": f"Token {again.token}"}

    agents = (await client.get("/api/agents/", headers=headers)).json()
    products = (await client.get("/api/datasets/1/products/", headers=headers)).json()
    definitions = await client.get(
        f"/api/agents/{again.catalog_agent_id}/agentic-execution-definitions/", headers=headers
    )

    assert (again.catalog_agent_id, again.task_agent_id, again.invoice_agent_id) == (
        first.catalog_agent_id,
        first.task_agent_id,
        first.invoice_agent_id,
    )
    assert first.token != again.token
    assert sorted((a["agent_type"], a["file_upload"]) for a in agents) == [
        ("catalog-enrichment", True),
        ("invoice-scanning", True),
        ("structured-task", True),
    ]
    assert [p["sku"] for p in products] == ["SKU-001", "SKU-002", "SKU-003"]
    assert [d["key"] for d in definitions.json()] == ["catalog-enrichment"]


@pytest.mark.parametrize(
    ("environment", "model"),
    [
        ({}, "demo"),
        ({"OPENAI_API_KEY": "sk-x"}, "openai:gpt-4o-mini"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, "openai:gpt-4o-mini"),
        ({"ANTHROPIC_API_KEY": "sk-ant"}, "anthropic:claude-haiku-4-5"),
        ({"AGENTRUN_DEFAULT_MODEL": "openai:gpt-4.1", "OPENAI_API_KEY": "sk-x"}, "openai:gpt-4.1"),
    ],
)
def test_dev_picks_a_real_model_when_a_provider_is_configured_else_the_offline_demo(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], model: str
) -> None:
    for name in (
        "AGENTRUN_DEFAULT_MODEL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    chosen, reason = default_model()

    assert chosen == model
    if model == "demo":
        assert "offline `demo` model: no LLM" in reason


def test_dev_makes_an_encryption_key_once_and_keeps_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTRUN_ENCRYPTION_KEYS", raising=False)
    notes: list[str] = []

    use_encryption_key(notes)
    first = os.environ["AGENTRUN_ENCRYPTION_KEYS"]
    monkeypatch.delenv("AGENTRUN_ENCRYPTION_KEYS")
    use_encryption_key(notes)

    key_file = tmp_path / ".dev" / "encryption-key"
    assert os.environ["AGENTRUN_ENCRYPTION_KEYS"] == first == key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert Settings(_env_file=None).keyring.sealing_id is not None  # type: ignore[call-arg]
    assert "Encryption key: .dev/encryption-key" in notes[0]


def test_dev_uses_the_encryption_keys_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    key = new_key()
    monkeypatch.setenv("AGENTRUN_ENCRYPTION_KEYS", key)

    use_encryption_key([])

    assert os.environ["AGENTRUN_ENCRYPTION_KEYS"] == key
    assert not (tmp_path / ".dev").exists()
