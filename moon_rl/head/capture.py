"""Capture a policy's last hidden states from the forward TRL already runs, so the contrastive loss needs
no second forward pass.

TRL's GRPOTrainer (and SFTTrainer) call `model(...)`; the LM head there may be fused with the loss, so
the logits path never hands us hidden states. A forward hook on the *backbone* (the transformer body,
`get_base_model().base_model` under PEFT) sees its output `last_hidden_state` with the autograd graph
attached. TRL also runs the same module under `torch.no_grad()` (old/ref log-probs, generation); those
calls are ignored unless `capture_no_grad=True`.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DDP / FSDP / DeepSpeed / torch.compile wrappers (accelerate's `extract_model_from_parallel`)."""
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model, keep_torch_compile=False)


def peft_base(model: nn.Module) -> nn.Module:
    """The underlying transformers model (PEFT's `get_base_model` for a PeftModel; anything else -> itself)."""
    model = unwrap_model(model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def find_backbone(model: nn.Module) -> nn.Module:
    """The transformer body whose output is `last_hidden_state` (`Qwen2Model`, `Qwen2_5_VLModel`, ...)."""
    base = peft_base(model)
    backbone = getattr(base, "base_model", base)
    return backbone


def last_hidden(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    hidden = getattr(output, "last_hidden_state", None)
    if hidden is None and isinstance(output, (tuple, list)):
        hidden = output[0]
    if hidden is None:
        raise TypeError(f"cannot find last_hidden_state in backbone output of type {type(output).__name__}")
    return hidden


class HiddenStateCapture(contextlib.AbstractContextManager):
    """Context manager: while active, records each grad-enabled backbone output as (B, L, H) tensors.

    TRL chunks one logical batch into several forwards (`_get_per_token_logps_and_entropies(batch_size=...)`);
    `hidden_states()` concatenates the chunks in call order along the batch dimension.
    """

    def __init__(self, model: nn.Module, capture_no_grad: bool = False):
        self.backbone = find_backbone(model)
        self.capture_no_grad = capture_no_grad
        self.chunks: list[torch.Tensor] = []
        self.calls = 0
        self._handle = None

    def _hook(self, module, args, output):
        if torch.is_grad_enabled() or self.capture_no_grad:
            self.chunks.append(last_hidden(output))
            self.calls += 1

    def __enter__(self) -> HiddenStateCapture:
        self._handle = self.backbone.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def hidden_states(self) -> torch.Tensor:
        if not self.chunks:
            raise RuntimeError("no hidden states were captured: the backbone did not run with gradients enabled")
        if len(self.chunks) == 1:
            return self.chunks[0]
        width = max(c.size(1) for c in self.chunks)
        if any(c.size(1) != width for c in self.chunks):
            raise RuntimeError("captured chunks have different sequence lengths; cannot concatenate")
        return torch.cat(self.chunks, dim=0)
