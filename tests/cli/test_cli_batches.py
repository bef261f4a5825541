"""``agentrun batch submit … --wait`` and ``agentrun batch results`` against a live service."""

import json
from pathlib import Path

import pytest

from tests.cli.test_cli_remote import agentrun, running_worker
from tests.factories import Factory

__all__ = ["running_worker"]


@pytest.mark.usefixtures("running_worker")
async def test_batch_submit_waits_with_a_progress_bar_and_results_come_in_order(
    live_url: str, factory: Factory, tmp_path: Path
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"input": {"instructions": f"Name colour {n}."}}) + "\n" for n in range(5)
        )
    )

    code, stdout, stderr = await agentrun(
        live_url, alice, "batch", "submit", str(agent.id), "structured-task", str(items), "--wait"
    )

    assert code == 0, stderr
    batch = json.loads(stdout)
    assert batch["status"] == "finished"
    assert batch["counts"]["finished"] == 5
    assert "submitted batch 1: 5 items" in stderr
    assert f"[{'#' * 30}]      5/5  finished 5  failed 0" in stderr

    code, stdout, stderr = await agentrun(live_url, alice, "batch", "results", "1")

    assert code == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [(line["item"], line["status"]) for line in lines] == [(n, "finished") for n in range(5)]


async def test_batch_errors_are_printed_with_a_failing_exit_code(
    live_url: str, factory: Factory, tmp_path: Path
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    items = tmp_path / "items.jsonl"
    items.write_text('{"input": {"instructions": ""}}\n')

    refused = await agentrun(
        live_url, alice, "batch", "submit", str(agent.id), "structured-task", str(items)
    )
    missing = await agentrun(live_url, alice, "batch", "results", "99")

    assert refused[0] == missing[0] == 1
    assert "HTTP 400" in refused[2]
    assert '"0"' in refused[2]
    assert "HTTP 404" in missing[2]
