"""`moon-rl demo` end to end on a micro plan: the shipped abt-buy data, a tiny random text model in place of
SmolLM2 (no download in CI; the real run is benchmarks/demo.py), two SFT steps and one GRPO step. Every stage
runs, training happened (loss logged, adapter changed), the results table and the query come out, stdout carries
no dict and no FutureWarning, and the demo's recipes are the recipe files' values."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from moon_rl import demo as demo_mod
from moon_rl.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def micro_demo(monkeypatch, tmp_path_factory):
    from moon_rl.models.tiny import make_tiny_model

    base = tmp_path_factory.mktemp("base") / "tiny-qwen2"
    titles = [line.split(",")[1] for line in (demo_mod.shipped_data() / "tableB.csv").read_text(encoding="utf-8").splitlines()[1:300]]
    make_tiny_model("qwen2", base, extra_corpus=titles, seed=0)
    monkeypatch.setattr(demo_mod, "obtain_base_model", lambda cache: base)
    micro = dataclasses.replace(demo_mod.PLANS["quick"], sft_steps=2, grpo_steps=1, max_products=40, max_queries=8, batch_size=16)
    monkeypatch.setitem(demo_mod.PLANS, "quick", micro)
    return micro


def test_demo_runs_every_stage_on_the_shipped_data(tmp_path, micro_demo):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "demo_summary.json").read_text())

    # every stage ran, on the shipped abt-buy catalog
    assert len(summary["timings_s"]) == 7
    assert summary["sft"]["global_step"] == 2 and summary["grpo"]["global_step"] == 1
    products = (out / "catalog" / "products.jsonl").read_text().splitlines()
    assert len(products) == 1081 + 1092
    # training happened: losses logged to the run's JSONL, the GRPO adapter differs from the SFT one
    sft_logs = [json.loads(line) for line in (out / "sft" / "logs.jsonl").read_text().splitlines()]
    assert any(r.get("train_loss", 0) > 0 for r in sft_logs)
    grpo_logs = [json.loads(line) for line in (out / "grpo" / "logs.jsonl").read_text().splitlines()]
    assert any("reward" in r and "contrastive_loss" in r for r in grpo_logs)
    before, after = load_file(out / "sft" / "adapter_model.safetensors"), load_file(out / "grpo" / "adapter_model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before)

    # every row scored on the same sampled queries, the table and its verdict printed, then the paths
    assert set(summary["rows"]) == {"base", "sft", "sft+grpo", "tfidf_char", "bm25"}
    assert all(0.0 <= r["R@1"] <= r["R@10"] <= 1.0 for r in summary["rows"].values())
    assert "| row | R@1 | R@10 | MRR | what |" in result.output
    assert re.search(r"(The trained model wins|A baseline wins): \S+ has the best R@1", result.output)
    assert result.stdout.rstrip().endswith(f"exported model: {summary['export']}")
    # the query against the exported sentence-transformers folder: a top 3 with scores
    assert len(summary["query"]["top3"]) == 3 and "query:" in result.output
    assert summary["export_max_abs_diff"] is not None and summary["export_max_abs_diff"] <= 1e-4

    # a terminal a person can read: no raw log dict, no FutureWarning on stdout
    assert "{'loss'" not in result.stdout and "FutureWarning" not in result.stdout


def test_demo_recipes_are_the_recipe_files():
    """The demo's SFT / GRPO settings are configs/sft_smollm2_matching.yaml (+ the reasoning embedding's two
    settings) and configs/grpo_smollm2_reasoning.yaml: a change to a recipe reaches the demo or fails here."""
    sft = yaml.safe_load((ROOT / "configs" / "sft_smollm2_matching.yaml").read_text())
    sft.update(pooling="reasoning_token", next_token_weight=1.0)
    assert {k: sft[k] for k in demo_mod.SFT_RECIPE} == demo_mod.SFT_RECIPE
    grpo = yaml.safe_load((ROOT / "configs" / "grpo_smollm2_reasoning.yaml").read_text())
    assert {k: grpo[k] for k in demo_mod.GRPO_RECIPE} == demo_mod.GRPO_RECIPE


def test_results_table_names_the_winner():
    rows = {"base": {"R@1": 0.25, "R@10": 0.6, "MRR": 0.35}, "sft+grpo": {"R@1": 0.6, "R@10": 0.9, "MRR": 0.7},
            "tfidf_char": {"R@1": 0.86, "R@10": 0.99, "MRR": 0.9}}
    table = demo_mod.results_table(rows)
    assert "A baseline wins: tfidf_char has the best R@1, 0.860; the trained model has 0.600 (+0.350 R@1 over the untouched base)" in table
    rows["sft+grpo"]["R@1"] = 0.9
    assert "The trained model wins: sft+grpo" in demo_mod.results_table(rows)


def test_shipped_data_carries_its_licence():
    folder = demo_mod.shipped_data()
    assert {"tableA.csv", "tableB.csv", "train.csv", "valid.csv", "test.csv", "LICENSE", "SOURCE.md"} <= {p.name for p in folder.iterdir()}
    assert "BSD 3-Clause" in (folder / "LICENSE").read_text()


def test_a_missing_lexical_package_drops_its_row_with_the_pip_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bm25s" else real(name, *a))
    assert demo_mod.lexical_rows() == ["tfidf_char"]
    assert "no bm25 row: it needs bm25s (pip install 'moon-rl[bench]')" in capsys.readouterr().out
