"""The docs' sizing page (docs/sizing.md) is written from a benchmark run's results
(bench/sizing/): every figure of issue #17 with its target and verdict, and what a run did not
measure said so."""

from pathlib import Path
from typing import Any

import pytest

from bench import sizing
from bench.__main__ import SCENARIOS

SIZING_PAGE = Path(__file__).resolve().parent.parent / "docs" / "sizing.md"


def _document(**scenarios: Any) -> dict[str, Any]:
    return {
        "meta": {
            "started": "2026-12-01T11:05:00+0000",
            "quick": False,
            "scenarios": list(SCENARIOS),
            "commit": "abc1234",
            "uncommitted_files": 0,
            "cpus": 2,
            "load_average": [1.5, 1.2, 0.9],
            "load_average_after": [2.0, 1.4, 1.0],
            "total_seconds": 420.0,
        },
        "scenarios": scenarios,
    }


LATENCY = {
    "figures": {
        "idle": {"first_model_request": {"n": 200, "p50_ms": 9.1, "p99_ms": 22.4}},
        "loaded": {
            "model_latency_s": 0.5,
            "server_added": {"n": 1000, "p50_ms": 800.0, "p99_ms": 2000.0},
            "executions_per_s_needed": 400.0,
            "service_cpu_ms_per_execution": 18.0,
            "cores_needed_at_that_cpu": 7.2,
        },
        "loaded_holdable": {
            "model_latency_s": 4.0,
            "server_added": {"n": 1000, "p50_ms": 19.0, "p99_ms": 60.0},
            "executions_per_s_needed": 50.0,
            "service_cores_used": 0.9,
            "machine_cores_busy": 1.4,
        },
        "idle_worker": {"cpu_percent_of_a_core": 0.5},
    },
    "met": False,
    "load_average": {"start": [1.1, 1.0, 0.9], "end": [1.9, 1.2, 1.0]},
}


def test_every_figure_is_shown_with_its_target_and_verdict() -> None:
    block = sizing.render(_document(latency=LATENCY), "bench/results/x.json")

    assert block.startswith(sizing.BEGIN)
    assert block.rstrip().endswith(sizing.END)
    assert "From a full-size run" in block
    assert "commit abc1234, 2 CPUs, load average 1.50 / 1.20 / 0.90" in block
    assert "| Idle service: POST's 202 → model's first request, p50 | 9.1 ms | ≤ 10 ms | met |" in (
        block
    )
    assert "| 800 ms (p99 2,000 ms; needs 7.2 cores at its CPU) | ≤ 25 ms | **missed** |" in block
    holdable = "200 in flight at 4.0 s model latency: time added, p50 | 19 ms (p99 60 ms)"
    assert f"{holdable} | ≤ 25 ms | met |" in block
    assert "1.1→1.9" in block  # the load while the scenario ran


def test_a_scenario_not_run_or_failed_is_said_not_measured() -> None:
    block = sizing.render(_document(latency=LATENCY, fleet={"error": "RuntimeError: boom"}))

    fleet_rows = [line for line in block.splitlines() if line.startswith("| Fleet")]
    assert fleet_rows
    assert all("not measured in this run (the scenario failed)" in r for r in fleet_rows)
    assert "Service CPU / plain `agent.run()`, structured-task | not measured in this run" in block
    assert "- **Redis**: not measured in this run." in block


def test_a_quick_run_says_so() -> None:
    document = _document()
    document["meta"]["quick"] = True
    document["meta"]["scenarios"] = ["latency"]

    block = sizing.render(document)

    assert "From a `--quick` (smaller sizes) run" in block
    assert "(only latency)" in block


def test_the_block_replaces_only_what_lies_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "sizing.md"
    page.write_text(f"# Title\n\nbefore\n\n{sizing.BEGIN}\nold\n{sizing.END}\n\nafter\n")

    sizing.write_page(f"{sizing.BEGIN}\nnew\n{sizing.END}\n", page)

    assert page.read_text() == f"# Title\n\nbefore\n\n{sizing.BEGIN}\nnew\n{sizing.END}\n\nafter\n"


def test_a_page_without_the_markers_is_left_alone(tmp_path: Path) -> None:
    page = tmp_path / "sizing.md"
    page.write_text("# Title\n")

    with pytest.raises(ValueError, match="sizing:begin"):
        sizing.write_page(f"{sizing.BEGIN}\nnew\n{sizing.END}\n", page)
    assert page.read_text() == "# Title\n"


def test_the_sizing_page_has_one_generated_block_and_it_knows_every_scenario() -> None:
    assert sizing.PAGE == SIZING_PAGE
    text = SIZING_PAGE.read_text()

    assert text.count(sizing.BEGIN) == 1
    assert text.count(sizing.END) == 1
    assert set(sizing.SCENARIOS) == set(SCENARIOS)


def test_figures_of_another_shape_are_said_unreadable_not_a_crash() -> None:
    block = sizing.render(_document(fleet={"figures": {"target_case": {"held": 1}, "fleets": 3}}))

    assert "- **Redis**: not measured in this run (figures unreadable" in block
