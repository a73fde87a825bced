"""ImplicitAVE as published, end to end: prepare, SFT, GRPO and `eval --tasks attributes` with the tiny VL model,
the report carrying the majority-option baseline; and eval on a catalog without a train split."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from moon_rl.cli import app
from moon_rl.eval.metrics import majority_attribute_metrics

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "data_prep"))
from implicitave_layout import make_implicitave  # noqa: E402

runner = CliRunner()


def _ok(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_prepare_sft_grpo_eval(tiny_model_dir, tmp_path):
    data = make_implicitave(tmp_path / "ImplicitAVE")
    prepared = tmp_path / "iave"
    _ok("data", "prepare", "--source", "implicitave", "--input", str(data), "--task", "sft", "--out", str(prepared))
    catalog = prepared / "catalog"
    _ok("data", "prepare", "--task", "grpo", "--catalog", str(catalog), "--out", str(prepared / "grpo"))

    sft_out, grpo_out = tmp_path / "sft", tmp_path / "grpo"
    _ok("sft", "--model", str(tiny_model_dir("qwen2_5_vl")), "--data", str(prepared / "sft"), "--out", str(sft_out),
        "--config", str(ROOT / "configs/sft_tiny.yaml"), "--batch-size", "3", "--max-steps", "2",
        "--set", "max_length=384", "--set", "logging_steps=1", "--set", "report_to=none",
        # One record per ASIN and no search queries: no positives for InfoNCE, so SFT trains the traces alone.
        "--set", "contrastive_weight=0")
    _ok("grpo", "--model", str(sft_out), "--data", str(prepared / "grpo"), "--out", str(grpo_out),
        "--config", str(ROOT / "configs/grpo_tiny.yaml"), "--batch-size", "4", "--num-generations", "2", "--max-steps", "1",
        "--reward", "format=0.5", "--reward", "attribute_choice=1.0",
        "--set", "max_completion_length=8", "--set", "logging_steps=1", "--set", "report_to=none",
        "--set", "contrastive_weight=0")
    assert json.loads((grpo_out / "trainer_state.json").read_text())["global_step"] == 1

    out = tmp_path / "eval"
    _ok("eval", "--model", str(grpo_out), "--data", str(catalog), "--out", str(out), "--tasks", "attributes",
        "--max-new-tokens", "4", "--batch-size", "8", "--set", "progress=false")
    metrics = json.loads((out / "metrics.json").read_text())
    scored = metrics["models"]["grpo"]["attributes"]
    majority = metrics["baselines"]["majority option"]["attributes"]
    assert scored["n_records"] == majority["n_records"] == 7  # the evaluation products, the same records
    assert majority["parse_rate"] == 1.0 and majority["values_from"] == "train split, else the evaluated records"
    assert "| metric | grpo | majority option |" in (out / "report.md").read_text()


def test_eval_attributes_on_a_catalog_without_a_train_split(tmp_path):
    data = make_implicitave(tmp_path / "ImplicitAVE")
    catalog = tmp_path / "clothing"
    _ok("data", "prepare", "--source", "implicitave", "--out", str(catalog),
        "--input", str(data / "evaluation_data/texts/Clothing_annotated_final.tsv"))
    assert not (catalog / "splits" / "train.txt").exists()
    from moon_rl.eval.tasks import load_eval_data, majority_baseline

    eval_data = load_eval_data(catalog, 500, 200)
    assert eval_data.train == [] and "no train split: k-NN classification skipped" in eval_data.notes
    baseline = majority_baseline(eval_data, 100)
    # Sleeve Style: 3/4 Sleeve twice, Long Sleeve once -> 2 of 3 right; Neckline: Halter, Crew Neck -> first seen.
    assert baseline["values_from"] == "evaluated records" and baseline["per_attribute"]["Sleeve Style"] == 2 / 3


def test_majority_baseline_prefers_the_train_split():
    golds = [{"a": "x"}, {"a": "x"}, {"a": "y", "b": "p"}]
    out = majority_attribute_metrics(golds, None, [{"a": "y"}])
    assert out["per_attribute"] == {"a": 1 / 3, "b": 1.0}
    assert out["values_from"] == "train split, else the evaluated records"
