"""`moon-rl demo --tiny` end to end on a micro plan (the quick plan, shrunk): every stage runs and the results
table, report and verified export come out; a previous demo folder is replaced, any other is refused."""

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from moon_rl import demo_tiny as demo_mod
from moon_rl.cli import app


@pytest.fixture
def micro_plan(monkeypatch):
    quick = demo_mod.PLANS["quick"]
    micro = dataclasses.replace(
        quick,
        products=24,
        sft={**quick.sft, "max_steps": 4, "logging_steps": 2, "save_steps": 4},
        grpo={**quick.grpo, "max_steps": 1, "max_completion_length": 24, "save_steps": 1},
        eval={"max_products": 12, "max_queries": 6, "max_attribute_records": 3, "max_new_tokens": 16, "batch_size": 8},
    )
    monkeypatch.setitem(demo_mod.PLANS, "quick", micro)
    return micro


def test_demo_runs_every_stage(tmp_path, micro_plan):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--tiny", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| metric | grpo | sft | base-model |" in result.output
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["sft"]["global_step"] == 4 and summary["grpo"]["global_step"] == 1
    assert len(summary["timings_s"]) == 7
    assert summary["export_max_abs_diff"] is not None and summary["export_max_abs_diff"] <= 1e-4
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "metrics.json").is_file()
    assert (out / "export" / "adapter_model.safetensors").is_file()

    # Running again replaces the earlier demo's folder without --force.
    again = CliRunner().invoke(app, ["demo", "--tiny", "--quick", "--out", str(out)])
    assert again.exit_code == 0, again.output


def test_demo_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["demo", "--tiny", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--force" in result.output
    assert (tmp_path / "mine.txt").read_text() == "keep me"
