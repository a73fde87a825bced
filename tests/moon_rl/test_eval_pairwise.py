"""The Creative4U pairwise task end to end on synthetic pairs with the tiny VL model: `data synth --pairs`,
`data prepare --task pairwise`, `sft`, `grpo --reward pairwise_choice`, `eval --tasks pairwise` (with the
always-A / always-B baselines in the report)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from moon_rl.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _ok(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_pairwise_synth_prepare_sft_grpo_eval(tiny_model_dir, tmp_path):
    pairs = tmp_path / "pairs"
    _ok("data", "synth", "--pairs", "10", "--image-size", "16", "--out", str(pairs))
    _ok("data", "prepare", "--task", "pairwise", "--pairs", str(pairs / "train.jsonl"), "--out", str(tmp_path / "ds"))
    sft_out, grpo_out = tmp_path / "sft", tmp_path / "grpo"
    # A pair has no contrastive positive: the embedding term is off.
    _ok("sft", "--model", str(tiny_model_dir("qwen2_5_vl")), "--data", str(tmp_path / "ds" / "sft"), "--out", str(sft_out),
        "--config", str(ROOT / "configs/sft_tiny.yaml"), "--batch-size", "4", "--max-steps", "2",
        "--set", "max_length=384", "--set", "logging_steps=1", "--set", "report_to=none", "--set", "contrastive_weight=0")
    _ok("grpo", "--model", str(sft_out), "--data", str(tmp_path / "ds" / "grpo"), "--out", str(grpo_out),
        "--config", str(ROOT / "configs/grpo_tiny.yaml"), "--batch-size", "4", "--num-generations", "2", "--max-steps", "1",
        "--reward", "pairwise_choice=1.0", "--set", "max_completion_length=8", "--set", "logging_steps=1",
        "--set", "report_to=none", "--set", "contrastive_weight=0")
    state = json.loads((grpo_out / "trainer_state.json").read_text())
    assert state["global_step"] == 1
    assert any("rewards/pairwise_choice/mean" in h for h in state["log_history"])

    out = tmp_path / "eval"
    _ok("eval", "--model", str(grpo_out), "--baseline", str(sft_out), "--data", str(pairs / "test.jsonl"),
        "--tasks", "pairwise", "--out", str(out), "--max-new-tokens", "4", "--set", "progress=false")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_pairs"] == 2 and set(metrics["models"]) == {"grpo", "sft"}
    for res in metrics["models"].values():
        assert 0.0 <= res["pairwise"]["accuracy"] <= res["pairwise"]["answered"] <= 1.0
    always = [metrics["baselines"][f"always {x}"]["pairwise"]["accuracy"] for x in "AB"]
    assert sum(always) == 1.0
    assert "| metric | grpo | sft | always A | always B |" in (out / "report.md").read_text()


def test_pairwise_needs_its_pairs_file(tmp_path):
    result = runner.invoke(app, ["data", "prepare", "--task", "pairwise", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--task pairwise needs --pairs FILE" in result.output
    result = runner.invoke(app, ["eval", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "e"),
                                 "--tasks", "pairwise,attributes"])
    assert result.exit_code == 2 and "--tasks pairwise reads a pairs file" in result.output
