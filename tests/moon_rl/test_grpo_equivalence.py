"""With contrastive_weight=0 and both MOON3.0 modules off, MoonGRPOTrainer must train exactly like
unmodified trl.GRPOTrainer on the same seed: same rollouts, same losses, same gradients, same metrics, same
updated weights and log-probs, no extra parameter or optimizer state.

MoonGRPOTrainer overrides private TRL methods (`_compute_loss`, `_generate_and_score_completions`,
`_generate`, ...); this is the test that fails loudly when TRL changes underneath them.
"""

from __future__ import annotations

import pytest
import torch
from grpo_support import fast_config, grpo_dataset, moon_trainer
from transformers import TrainerCallback
from trl import GRPOTrainer

from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer


class GradRecorder(TrainerCallback):
    """Trainable gradients just before each optimizer step (after accumulation, before clipping)."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.steps.append({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})


def spread_reward(completions, **kwargs):
    """A reward that differs between rollouts of a random model, so advantages (and gradients) are non-zero."""
    return [(sum(map(ord, c[0]["content"])) % 7) / 6 for c in completions]


def _run(cls, model_dir, tmp_path, use_lora=True, **overrides):
    # Every row has an image: plain TRL cannot batch rows with and without images (MoonGRPOTrainer can).
    config = fast_config(tmp_path / cls.__name__, contrastive_weight=0.0, **overrides)
    recorder = GradRecorder()
    # Without id columns: with the term off a TRL user's dataset needs none.
    dataset = grpo_dataset("vl", query_rows=False).remove_columns(["id", "group_id"])
    trainer = moon_trainer(model_dir, config, dataset=dataset, cls=cls, callbacks=[recorder], rewards=[spread_reward], use_lora=use_lora)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return losses, rewards, recorder.steps, trainer


def _step_logs(trainer) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "step_time"} for h in trainer.state.log_history if "loss" in h]


def _text_logps(trainer) -> torch.Tensor:
    """(1, L-1) per-token log-probs of a fixed text under the trained policy."""
    tok = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    ids = tok(["red cotton shirt with long sleeves"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = trainer.model(input_ids=ids).logits.float()
    return logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)


@pytest.mark.parametrize(
    "overrides",
    [
        # TRL's default loss (dapo), a generation batch split over two micro-batches.
        dict(gradient_accumulation_steps=2),
        # The original GRPO loss with a KL term (reference = adapter disabled) and two passes per generation.
        dict(loss_type="grpo", beta=0.04, num_iterations=2),
        # Full fine-tuning with a reference model that TRL syncs with the policy every step (zips their parameters).
        dict(use_lora=False, beta=0.04, sync_ref_model=True, ref_model_sync_steps=1, ref_model_mixup_alpha=0.5, learning_rate=1e-4),
    ],
    ids=["dapo-accumulation", "grpo-beta-iterations", "full-sync-ref-model"],
)
def test_weight_zero_trains_exactly_like_trl(tiny_model_dir, tmp_path, overrides):
    model_dir = tiny_model_dir("qwen2_5_vl")
    ref_losses, ref_rewards, ref_grads, ref = _run(GRPOTrainer, model_dir, tmp_path, **overrides)
    losses, rewards, grads, trainer = _run(MoonGRPOTrainer, model_dir, tmp_path, **overrides)

    assert len(losses) == len(ref_losses) == 2
    assert losses == pytest.approx(ref_losses, abs=1e-6)
    assert rewards == pytest.approx(ref_rewards, abs=1e-6)
    assert len(grads) == len(ref_grads) == 2
    for step, (got, want) in enumerate(zip(grads, ref_grads, strict=True)):
        assert set(got) == set(want), f"step {step}: different parameters received gradients"
        assert want and any(g.abs().sum() > 0 for g in want.values()), "no non-zero trainable gradient recorded"
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7, msg=f"step {step}: {name}")
    # Nothing of the contrastive branch ran or was logged, and (issue 20) nothing was attached: the same
    # parameters, the same optimizer state, the same metrics, the same updated weights and log-probs.
    assert not any("contrastive" in k for h in trainer.state.log_history for k in h)
    assert trainer.moon_extras() is None
    params, ref_params = dict(trainer.model.named_parameters()), dict(ref.model.named_parameters())
    assert params.keys() == ref_params.keys()
    assert len(trainer.optimizer.state) == len(ref.optimizer.state) > 0
    for name, want in ref_params.items():
        torch.testing.assert_close(params[name], want, rtol=1e-5, atol=1e-6, msg=f"updated weight {name}")
    torch.testing.assert_close(_text_logps(trainer), _text_logps(ref), rtol=1e-5, atol=1e-6)
    logs, ref_logs = _step_logs(trainer), _step_logs(ref)
    assert [h.keys() for h in logs] == [h.keys() for h in ref_logs]
    for got, want in zip(logs, ref_logs, strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
