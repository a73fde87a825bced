"""`moon-rl export-adapter`: round trip, merged model for plain transformers, refusals and atomicity."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from data_prep.schema import load_catalog
from moon_rl.errors import MoonError
from moon_rl.eval.random_run import write_random_run
from moon_rl.export.adapter import export_adapter
from moon_rl.inference import load


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    base = tiny_model_dir("qwen2_5_vl")
    run = write_random_run(base, tmp_path_factory.mktemp("export") / "run", kind="grpo", pooling="fusion", residual=True)
    # The latest `moon-rl eval` output of the run goes into the model card.
    (run / "eval").mkdir()
    metrics = {"data": "synth", "models": {"run": {"source": str(run), "retrieval": {"text->multimodal": {"recall@1": 0.375, "mrr": 0.5}}}}}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture(scope="module")
def exported(run_dir, sft_catalog_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "v1"
    result = export_adapter(run_dir, out, merge=True, verify_data=sft_catalog_dir, n_verify=3, verify_max_new_tokens=6, progress=False)
    return out, result


def test_export_writes_everything_and_round_trips(exported, run_dir, sft_catalog_dir):
    out, result = exported
    for name in ("adapter_config.json", "adapter_model.safetensors", "moon_extras.safetensors", "moon_extras.json", "tokenizer.json", "moon_rl.json", "README.md"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")) and not list(out.parent.glob(".v1.tmp-*"))
    meta = json.loads((out / "moon_rl.json").read_text())
    assert meta["kind"] == "grpo" and meta["export"]["source"] == str(run_dir) and meta["export"]["merged"] is True
    card = (out / "README.md").read_text()
    assert "## Training config" in card and "pooling: fusion" in card
    assert "## Latest eval metrics" in card and "| retrieval | text->multimodal | recall@1 | 0.375 |" in card
    assert result.max_abs_diff <= 1e-4

    products = load_catalog(sft_catalog_dir, split="test")[:3]
    kw = dict(catalog_dir=sft_catalog_dir, max_new_tokens=6, progress=False)
    source, again = load(run_dir), load(out)
    assert again.kind == "moon-rl adapter + head" and again.extras.residual is not None
    assert torch.allclose(source.encode(products, **kw), again.encode(products, **kw), atol=1e-5)


def test_merged_model_loads_with_plain_transformers(exported, tiny_model_dir, sft_catalog_dir, run_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out, result = exported
    merged_dir = out / "merged"
    assert result.merged == merged_dir and result.merged_max_abs_diff <= 1e-3
    model = AutoModelForImageTextToText.from_pretrained(merged_dir)
    processor = AutoProcessor.from_pretrained(merged_dir)
    inputs = processor(text=["<|im_start|>user\nnavy shirt<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3 or processor.tokenizer.eos_token_id in generated[0].tolist()
    # The LoRA update is inside the weights: a projection differs from the untouched base.
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir("qwen2_5_vl"))
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(dict(model.named_parameters())[name], dict(base.named_parameters())[name])
    # moon_rl.load reads the merged folder as a full model + head and embeds like the adapter (forward only).
    merged = load(merged_dir)
    assert merged.kind == "full model + head"
    products = load_catalog(sft_catalog_dir, split="test")[:2]
    kw = dict(catalog_dir=sft_catalog_dir, reasoning=False, progress=False)
    assert torch.allclose(merged.encode(products, **kw), load(run_dir).encode(products, **kw), atol=1e-4)


def test_cli_refuses_non_empty_target_and_force_replaces_only_an_export(run_dir, tmp_path):
    from moon_rl.cli import app

    out = tmp_path / "target"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export-adapter", str(run_dir), "--out", str(out)])
    assert result.exit_code == 2 and "not empty" in result.output and "--force" in result.output
    # --force replaces an earlier export only, never a folder of the user's (issue 19).
    result = CliRunner().invoke(app, ["export-adapter", str(run_dir), "--out", str(out), "--force"])
    assert result.exit_code == 2 and "not an earlier moon-rl export" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    result = CliRunner().invoke(app, ["export-adapter", str(run_dir), "--out", str(out), "--verify-records", "2"])
    assert result.exit_code == 0, result.output
    (out / "stale.txt").write_text("from the first export")
    result = CliRunner().invoke(app, ["export-adapter", str(run_dir), "--out", str(out), "--force", "--verify-records", "2"])
    assert result.exit_code == 0, result.output
    assert "max abs difference" in result.output
    assert not (out / "stale.txt").exists() and (out / "adapter_model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["target"]  # no temporary or backup folder left behind


def test_interrupted_export_leaves_nothing(run_dir, tmp_path, monkeypatch):
    import moon_rl.export.adapter as export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "model_card", interrupted)  # the last step before the rename
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export_adapter(run_dir, out, n_verify=1, verify_max_new_tokens=2, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_clear_errors(run_dir, tiny_model_dir, tmp_path):
    from moon_rl.head.args import EmbeddingArgs
    from moon_rl.head.extras import MoonExtras, save_extras

    with pytest.raises(MoonError, match="no adapter_config.json"):
        export_adapter(tiny_model_dir("qwen2"), tmp_path / "a")
    no_head = tmp_path / "no_head"
    shutil.copytree(run_dir, no_head)
    (no_head / "moon_extras.safetensors").unlink()
    with pytest.raises(MoonError, match="embedding head is missing"):
        export_adapter(no_head, tmp_path / "b")
    missing_base = tmp_path / "missing_base"
    shutil.copytree(run_dir, missing_base)
    config = json.loads((missing_base / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (missing_base / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(MoonError, match="does not exist here; pass --base-model"):
        export_adapter(missing_base, tmp_path / "c")
    wrong_head = tmp_path / "wrong_head"
    shutil.copytree(run_dir, wrong_head)
    save_extras(MoonExtras(128, 2, EmbeddingArgs(embedding_dim=32)), wrong_head)  # head of a 128-wide model
    with pytest.raises(MoonError, match="hidden_size=128"):
        export_adapter(wrong_head, tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["missing_base", "no_head", "wrong_head"]


def test_base_model_override_is_recorded_in_the_export(run_dir, tiny_model_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    config = json.loads((moved / "adapter_config.json").read_text())
    real_base = config["base_model_name_or_path"]
    config["base_model_name_or_path"] = "/trained/elsewhere/base"
    (moved / "adapter_config.json").write_text(json.dumps(config))
    result = export_adapter(moved, tmp_path / "out", base_model=real_base, n_verify=2, verify_max_new_tokens=2, progress=False)
    assert result.base_model == real_base and result.max_abs_diff == 0.0
    # The export names the base it was verified against, so it loads without --base-model.
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["base_model_name_or_path"] == real_base
    assert load(tmp_path / "out").extras is not None
