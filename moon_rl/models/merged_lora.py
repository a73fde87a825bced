"""LoRA merged into its base weights for the length of a generation, then the base weights restored bit for bit.

Why: on transformers' `generate`, each LoRA-wrapped linear layer adds its own small matmuls, a scale and an add to
every decoding step (SmolLM2-135M with LoRA r16 on every linear layer: 210 wrapped layers, ~840 extra ops per
token). At batch 8 on 2 CPU threads that is 15-20 % of a rollout's time; with the adapter merged the decode step is
the plain model's (benchmarks/rollout_speed.py measures it). vLLM rollouts already run merged weights (TRL merges
the adapter to sync them); this is the same idea for the transformers path.

Why the copy: PEFT's `unmerge` subtracts the delta it added, and `(W + d) - d` is not `W` in floating point; over
hundreds of steps the frozen base would drift. So the weights of the merged layers are copied first and copied back
after PEFT's unmerge (its bookkeeping stays PEFT's). The price: one transient copy of the LoRA-wrapped base weights
(SmolLM2-135M with LoRA on every linear layer: ~0.4 GB in float32) while rollouts run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def lora_layers(model: nn.Module) -> list[nn.Module]:
    """The PEFT LoRA layers of `model` (empty when it has none or peft is not installed)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def why_not_mergeable(model: nn.Module, layers: list[nn.Module]) -> str | None:
    """None when every LoRA layer can be merged for generation and restored exactly; else the reason (the caller then
    generates with the adapter as it is). Dropout counts: in train mode LoRA's dropout is live during TRL's
    generation, and a merged weight would silently drop it."""
    if not layers:
        return "no LoRA layers"
    for layer in layers:
        base = layer.get_base_layer()
        if type(base) is not nn.Linear:
            return f"{type(base).__name__} base layer (only plain nn.Linear is merged)"
        weight = base.weight
        if not weight.is_floating_point() or weight.dim() != 2 or weight.numel() == 0:
            return "quantized or sharded base weights"
        if getattr(layer, "merged_adapters", None):
            return "adapter already merged"
        if getattr(layer, "disable_adapters", False):
            return "adapters disabled"
        if model.training and any(not isinstance(d, nn.Identity) and getattr(d, "p", 0.0) > 0 for d in layer.lora_dropout.values()):
            return "LoRA dropout is on"
        if any(getattr(layer, "use_dora", {}).values()) or any(getattr(layer, "lora_bias", {}).values()):
            return "DoRA or LoRA bias"
    return None


@contextlib.contextmanager
def merged_lora(model: nn.Module) -> Iterator[bool]:
    """Within the block, the active LoRA adapters are merged into their base weights (yields True), or, when
    `why_not_mergeable` says no, the model is left as it is (yields False). On exit the base weights are
    exactly what they were, and PEFT's layers unmerged."""
    layers = lora_layers(model)
    if why_not_mergeable(model, layers) is not None:
        yield False
        return
    saved = [(layer, layer.get_base_layer().weight.detach().clone()) for layer in layers]
    try:
        with torch.no_grad():
            for layer, _ in saved:
                layer.merge()
        yield True
    finally:
        with torch.no_grad():
            for layer, original in saved:
                if layer.merged_adapters:
                    layer.unmerge()
                layer.get_base_layer().weight.copy_(original)
