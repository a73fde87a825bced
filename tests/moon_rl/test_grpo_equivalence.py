"""With contrastive_weight=0 and both MOON3.0 modules off, MoonGRPOTrainer must train exactly like
unmodified trl.GRPOTrainer on the same seed: same rollouts, same losses, same gradients.

MoonGRPOTrainer overrides private TRL methods (`_compute_loss`, `_generate_and_score_completions`,
`_generate`, ...); this is the test that fails loudly when TRL changes underneath them.
"""

from __future__ import annotations

import pytest
import torch
from grpo_support import fast_config, grpo_dataset, moon_trainer
from transformers import TrainerCallback
from trl import GRPOTrainer

from moon_rl.grpo.trainer import MoonGRPOTrainer


class GradRecorder(TrainerCallback):
    """Trainable gradients just before each optimizer step (after accumulation, before clipping)."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.steps.append({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})


def spread_reward(completions, **kwargs):
    """A reward that differs between rollouts of a random model, so advantages (and gradients) are non-zero."""
    return [(sum(map(ord, c[0]["content"])) % 7) / 6 for c in completions]


def _run(cls, model_dir, tmp_path, **overrides):
    # Every row has an image: plain TRL cannot batch rows with and without images (MoonGRPOTrainer can).
    config = fast_config(tmp_path / cls.__name__, contrastive_weight=0.0, **overrides)
    recorder = GradRecorder()
    trainer = moon_trainer(model_dir, config, dataset=grpo_dataset("vl", query_rows=False), cls=cls, callbacks=[recorder],
                           rewards=[spread_reward])
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return losses, rewards, recorder.steps, trainer


@pytest.mark.parametrize(
    "overrides",
    [
        # TRL's default loss (dapo), a generation batch split over two micro-batches.
        dict(gradient_accumulation_steps=2),
        # The original GRPO loss with a KL term (reference = adapter disabled) and two passes per generation.
        dict(loss_type="grpo", beta=0.04, num_iterations=2),
    ],
    ids=["dapo-accumulation", "grpo-beta-iterations"],
)
def test_weight_zero_trains_exactly_like_trl(tiny_model_dir, tmp_path, overrides):
    model_dir = tiny_model_dir("qwen2_5_vl")
    ref_losses, ref_rewards, ref_grads, _ = _run(GRPOTrainer, model_dir, tmp_path, **overrides)
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
    # Nothing of the contrastive branch ran or was logged, but the head is attached (and saved with the adapter).
    assert not any("contrastive" in k for h in trainer.state.log_history for k in h)
    assert trainer.moon_extras() is not None
