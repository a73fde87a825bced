"""GRPO under degenerate batches: every rollout an empty string, every rollout cut at the maximum length,
every rollout rewarded the same (zero advantage). The run must go on with finite losses and metrics.

How the batches are forced, without touching the trainer: TRL passes `generation_kwargs` to generation,
and `suppress_tokens` there sets the listed tokens' logits to -inf. Suppressing every token but EOS makes
EOS the first token of every rollout (empty text); suppressing EOS makes every rollout run to
`max_completion_length`. A constant reward gives zero advantages.

What "sensible" means here (asserted): no NaN/inf anywhere in the logs (TRL logs `None` for a min/max over
zero tokens, e.g. `clip_ratio/low_min` when every completion is masked; that is its "no data", not a NaN);
the policy term is zero when advantages are; the contrastive term is computed whenever a rollout has a
token to pool. With `mask_truncated_completions=True` and every rollout truncated, no rollout has one:
the contrastive term is then skipped (zero, `contrastive/anchors` = 0, no `contrastive_loss` entry)
rather than scoring identical placeholder embeddings, and nothing is updated.
"""

from __future__ import annotations

import math

import pytest
import torch


def _text(completion) -> str:
    return completion if isinstance(completion, str) else completion[0]["content"]


def run(tiny_model_dir, tmp_path, rewards=None, **config):
    """Two GRPO steps of the tiny text model; returns (trainer, per-step logs, trainable params before)."""
    from grpo_support import fast_config, grpo_dataset, moon_trainer

    trainer = moon_trainer(tiny_model_dir("qwen2"), fast_config(tmp_path / "out", **config), rewards=rewards, dataset=grpo_dataset("text"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    for entry in trainer.state.log_history:
        bad = {k: v for k, v in entry.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, f"non-finite metrics at step {entry.get('step')}: {bad}"
    return trainer, logs, before


def changed(trainer, before) -> list[str]:
    return [n for n, p in trainer.model.named_parameters() if n in before and not torch.equal(before[n], p)]


def vocabulary(tiny_model_dir):
    from transformers import AutoConfig, AutoTokenizer

    path = tiny_model_dir("qwen2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    return AutoConfig.from_pretrained(path).vocab_size, tokenizer


def test_all_rollouts_empty(tiny_model_dir, tmp_path):
    size, tokenizer = vocabulary(tiny_model_dir)
    only_eos = [i for i in range(size) if i != tokenizer.eos_token_id]
    seen: list[str] = []

    def recorder(completions, **kwargs):
        seen.extend(_text(c) for c in completions)
        return [0.0] * len(completions)

    from reward_fns.registry import resolve_rewards

    rewards = [*resolve_rewards(["format", "attribute_f1"])[0], recorder]
    trainer, logs, before = run(
        tiny_model_dir, tmp_path, rewards=rewards, generation_kwargs={"suppress_tokens": only_eos}, pooling="fusion"
    )
    assert len(seen) == 16 and set(seen) == {""}
    for entry in logs:
        assert entry["completions/mean_length"] == 1.0  # the EOS token alone
        assert entry["reward"] == 0.0 and entry["reward_std"] == 0.0
        assert math.isfinite(entry["contrastive_loss"]) and entry["contrastive/anchors"] > 0
    assert any("moon_extras" in n for n in changed(trainer, before)), "the contrastive term still trains the head"


@pytest.mark.parametrize("mask_truncated", [False, True], ids=["kept", "masked"])
def test_all_rollouts_at_max_length(mask_truncated, tiny_model_dir, tmp_path):
    size, tokenizer = vocabulary(tiny_model_dir)
    stops = sorted({tokenizer.eos_token_id, tokenizer.pad_token_id})
    trainer, logs, before = run(
        tiny_model_dir, tmp_path, generation_kwargs={"suppress_tokens": stops}, mask_truncated_completions=mask_truncated
    )
    for entry in logs:
        assert entry["completions/clipped_ratio"] == 1.0 and entry["completions/mean_length"] == 12.0
    if mask_truncated:  # nothing left to learn from: zero loss, no contrastive anchors, no update
        assert all(entry["loss"] == 0.0 and entry["contrastive/anchors"] == 0.0 for entry in logs)
        assert not any("contrastive_loss" in entry for entry in logs)
        assert changed(trainer, before) == []
    else:
        assert all(math.isfinite(entry["contrastive_loss"]) for entry in logs)
        assert changed(trainer, before)


def test_all_rollouts_rewarded_equally(tiny_model_dir, tmp_path):
    def constant(completions, **kwargs):
        return [0.5] * len(completions)

    trainer, logs, before = run(tiny_model_dir, tmp_path, rewards=[constant], contrastive_weight=0.5, embedding_dim=16)
    for entry in logs:
        assert entry["reward"] == 0.5 and entry["reward_std"] == 0.0 and entry["frac_reward_zero_std"] == 1.0
        # Zero advantages: the policy term is exactly zero, the loss is the weighted contrastive term alone.
        assert entry["loss"] == pytest.approx(0.5 * entry["contrastive_loss"], rel=1e-5)
    names = changed(trainer, before)
    assert any("moon_extras" in n for n in names) and any("lora_" in n for n in names)
