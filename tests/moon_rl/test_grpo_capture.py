"""The contrastive term reuses TRL's forward: the backbone runs once per loss call, the hook captures that
one call, and the gradient of the joint loss reaches the embedding head, both MOON3.0 modules and LoRA,
while the frozen base weights stay put."""

from __future__ import annotations

import pytest
import torch
from grpo_support import fast_config, grpo_dataset, moon_trainer
from transformers import TrainerCallback

import moon_rl.trainers.grpo.trainer as grpo_trainer_module
from moon_rl.head.capture import HiddenStateCapture, find_backbone
from moon_rl.trainers.grpo.trainer import MoonGRPOTrainer


class CountingCapture(HiddenStateCapture):
    instances: list[CountingCapture] = []

    def __enter__(self):
        CountingCapture.instances.append(self)
        return super().__enter__()


class SpyTrainer(MoonGRPOTrainer):
    """Records, per `_compute_loss` call, every backbone forward (True when grad was enabled)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_forwards: list[list[bool]] = []

    def _compute_loss(self, model, inputs):
        calls: list[bool] = []
        handle = find_backbone(model).register_forward_hook(lambda m, a, o: calls.append(torch.is_grad_enabled()))
        try:
            return super()._compute_loss(model, inputs)
        finally:
            handle.remove()
            self.loss_forwards.append(calls)


class GradRecorder(TrainerCallback):
    def __init__(self):
        self.grads: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory):
    monkey = pytest.MonkeyPatch()
    monkey.setattr(grpo_trainer_module, "HiddenStateCapture", CountingCapture)
    CountingCapture.instances.clear()
    try:
        config = fast_config(
            tmp_path_factory.mktemp("grpo-capture"), pooling="fusion", residual_enhancement=True,
            gradient_accumulation_steps=2, learning_rate=1e-2, embedding_dim=32,  # a projection, to see it train
        )
        recorder = GradRecorder()
        # Query rows mix text-only prompts into image batches (also exercises the mixed-images path).
        trainer = moon_trainer(tiny_model_dir("qwen2_5_vl"), config, dataset=grpo_dataset("vl"), cls=SpyTrainer, callbacks=[recorder])
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        trainer.train()
        yield trainer, recorder.grads, before
    finally:
        monkey.undo()


def test_one_forward_and_one_capture_per_loss_call(run):
    trainer, _, _ = run
    assert len(trainer.loss_forwards) == 4  # 2 optimizer steps x 2 accumulation micro-batches
    assert all(calls == [True] for calls in trainer.loss_forwards), trainer.loss_forwards
    loss_captures = [c for c in CountingCapture.instances if not c.capture_no_grad]
    assert len(loss_captures) == 4 and all(c.calls == 1 for c in loss_captures)
    logged = [h for h in trainer.state.log_history if "contrastive/anchors" in h]
    assert logged and all(h["contrastive/anchors"] > 0 for h in logged)


def test_gradients_reach_head_modules_and_lora(run):
    trainer, grads, _ = run
    assert len(grads) == 2
    first = grads[0]

    def nonzero(prefix: str) -> bool:
        return any(g.abs().sum() > 0 for n, g in first.items() if prefix in n)

    assert nonzero("moon_extras.head."), "embedding head got no gradient"
    assert nonzero("moon_extras.fusion.queries") and nonzero("moon_extras.fusion.gate."), "fusion module got no gradient"
    assert nonzero("moon_extras.residual.gates"), "residual gates got no gradient"
    assert nonzero("lora_"), "LoRA got no gradient"
    assert not any("lora_" not in n and "moon_extras" not in n for n in first), "a frozen base weight got a gradient"


def test_trainable_parameters_and_what_changed(run):
    trainer, _, before = run
    model = trainer.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("moon_extras.fusion") for n in trainable)
    assert any(n.startswith("moon_extras.residual") for n in trainable)
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    extras_params = list(trainer.moon_extras().parameters())
    assert extras_params and all(id(p) in optimized for p in extras_params)

    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert "moon_extras.residual.gates" in changed and "moon_extras.head.proj.weight" in changed
    assert any("lora_B" in n for n in changed)
    assert changed <= trainable, f"frozen weights changed: {sorted(changed - trainable)[:5]}"
    gate_logs = [h for h in trainer.state.log_history if any(k.startswith("fusion_gate/") for k in h)]
    assert gate_logs and any(k.startswith("residual_gate_norm/") for k in gate_logs[-1])
    assert gate_logs[-1]["residual_gate_norm/layer1"] > 0
