"""`next_token_weight=0` (a contrastive-only SFT step on the record's own text) and the projection-free head
(`embedding_dim=None`, the default): what the SmolLM2 matching recipe runs, on the tiny text model."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from moon_rl.cli import app
from moon_rl.errors import MoonError


def config(out, **overrides):
    from moon_rl.trainers.sft.config import MoonSFTConfig

    fields = dict(output_dir=str(out), per_device_train_batch_size=8, max_steps=3, learning_rate=5e-3, logging_steps=1,
                  report_to="none", bf16=False, activation_checkpointing=False, save_strategy="no", seed=0, disable_tqdm=True,
                  pooling="input", contrastive_weight=1.0, next_token_weight=0.0)
    return MoonSFTConfig(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pooling": "mean"}, "pooling='input'"),
        ({"contrastive_weight": 0.0}, "contrastive_weight > 0"),
        ({"next_token_weight": -1.0}, "next_token_weight must be >= 0"),
    ],
)
def test_contrastive_only_needs_the_input_embedding(tmp_path, overrides, message):
    with pytest.raises(MoonError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(tmp_path, **overrides)


def test_head_without_projection_is_the_normalised_pooled_state():
    from moon_rl.head.projection import EmbeddingHead

    head = EmbeddingHead(8, None)
    pooled = torch.randn(3, 8)
    assert list(head.parameters()) == [] and head.out_features == 8
    torch.testing.assert_close(head(pooled), torch.nn.functional.normalize(pooled, dim=-1))


@pytest.fixture(scope="module")
def run(tiny_model_dir, sft_text_dataset_dir, tmp_path_factory):
    """3 contrastive-only steps; TRL's own loss must never run (its forward over prompt + trace is the cost saved)."""
    from datasets import load_from_disk
    from trl import SFTTrainer

    from moon_rl.models.loading import ModelArgs
    from moon_rl.trainers.sft.run import build_trainer

    out = tmp_path_factory.mktemp("contrastive-only") / "run"
    trainer = build_trainer(config(out), ModelArgs(model=str(tiny_model_dir("qwen2"))), load_from_disk(str(sft_text_dataset_dir)))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    def refuse(*args, **kwargs):
        raise AssertionError("the next-token forward ran with next_token_weight=0")

    with pytest.MonkeyPatch.context() as monkey:
        monkey.setattr(SFTTrainer, "compute_loss", refuse)
        trainer.train()
    trainer.save_model(str(out))
    return trainer, out, before


def test_contrastive_only_trains_the_adapter_and_logs_no_nll(run):
    trainer, _, before = run
    logs = [h for h in trainer.state.log_history if "contrastive_loss" in h]
    assert len(logs) == 3 and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    assert not any("nll" in h for h in trainer.state.log_history), "no next-token loss was computed, so none is logged"
    assert logs[-1]["num_tokens"] > logs[0]["num_tokens"] > 0  # the embedded text's tokens, counted as TRL counts its own
    after = dict(trainer.model.named_parameters())
    changed = {n for n, p in after.items() if not torch.equal(p.detach(), before[n])}
    assert any("lora_" in n for n in changed)
    frozen = [n for n, p in after.items() if not p.requires_grad]
    assert frozen and not any(n in changed for n in frozen)
    assert list(trainer.moon_extras().parameters()) == []  # no projection: nothing random between pooling and the loss


def test_served_vectors_are_the_trained_ones_and_the_export_has_no_dense(run, tmp_path):
    import moon_rl
    from sentence_transformers import SentenceTransformer

    from moon_rl.head.ids import EMBED_IDS_KEY, EMBED_MASK_KEY
    from moon_rl.head.pooling import input_masks
    from moon_rl.head.text import backbone_hidden

    trainer, out, _ = run
    rows = trainer.train_dataset.select(range(4))
    batch = trainer.data_collator([dict(r) for r in rows])
    trainer.model.eval()
    with torch.no_grad():
        embed = {"input_ids": batch[EMBED_IDS_KEY], "attention_mask": batch[EMBED_MASK_KEY]}
        trained = trainer.moon_extras().embed(backbone_hidden(trainer.model, embed), input_masks(embed["attention_mask"]))[0]
    texts = [r["title"] for r in rows]
    served = moon_rl.load(out).encode([{"title": t} for t in texts], progress=False)
    assert served.shape == trained.shape == (4, trainer.model.config.hidden_size)
    assert torch.allclose(trained.float(), served, atol=1e-5)

    export = tmp_path / "export"
    result = CliRunner().invoke(app, ["export-adapter", str(out), "--out", str(export), "--sentence-transformers", "--verify-records", "2"])
    assert result.exit_code == 0, result.output
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((export / "st" / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", "Normalize"]
    st = torch.as_tensor(SentenceTransformer(str(export / "st"), device="cpu").encode(texts))
    assert torch.allclose(st, served, atol=1e-4)
