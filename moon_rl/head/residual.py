"""Fine-grained residual enhancement (MOON3.0): carry early-layer, local token detail forward so it is
not washed out by the deep layers.

The output of a shallow decoder layer (`source_layer`) is added to the output of each later
`target_layers` layer through a gated residual:  h_t <- h_t + g_t * W_t h_s, per token.
`g_t` is a per-channel gate initialised to zero, so switching the module on leaves the model's output
at step 0 exactly unchanged; `W_t` starts as the identity.

It works by forward hooks on the decoder layers (no change to the model's code), so it applies in every
forward of the policy: training, TRL's no-grad log-prob passes, and generation.
"""

from __future__ import annotations

import torch
from torch import nn


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The language model's decoder layers, found the way transformers exposes them: `get_decoder()` (the text
    body of a VL model too: Qwen2-VL's `language_model`) and its `layers` (Qwen2/3, Llama, SmolLM2)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, nn.ModuleList):
        return layers
    raise ValueError(f"cannot find decoder layers in {type(model).__name__} (get_decoder().layers); residual enhancement supports Qwen/Llama-style models")


def _hidden_of(output):
    return output[0] if isinstance(output, tuple) else output


class FineGrainedResidual(nn.Module):
    def __init__(self, hidden_size: int, num_layers: int, source_layer: int = 0, target_layers: list[int] | None = None):
        super().__init__()
        targets = list(target_layers) if target_layers else [num_layers - 1]
        if not 0 <= source_layer < num_layers:
            raise ValueError(f"residual_source_layer must be in [0, {num_layers - 1}], got {source_layer}")
        bad = [t for t in targets if not source_layer < t < num_layers]
        if bad:
            raise ValueError(f"residual_target_layers must be after the source layer {source_layer} and < {num_layers}, got {bad}")
        self.source_layer = source_layer
        self.target_layers = targets
        self.proj = nn.ModuleList(nn.Linear(hidden_size, hidden_size, bias=False) for _ in targets)
        self.gates = nn.Parameter(torch.zeros(len(targets), hidden_size))
        with torch.no_grad():
            for lin in self.proj:
                lin.weight.copy_(torch.eye(hidden_size))
        self._source: torch.Tensor | None = None
        self._handles: list = []

    def attach(self, model: nn.Module) -> None:
        """Register the hooks on `model`'s decoder layers (idempotent)."""
        self.detach()
        layers = find_decoder_layers(model)
        self._handles.append(layers[self.source_layer].register_forward_hook(self._save_source))
        for i, t in enumerate(self.target_layers):
            self._handles.append(layers[t].register_forward_hook(self._make_inject(i)))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._source = None

    def _save_source(self, module, args, output):
        self._source = _hidden_of(output)

    def _make_inject(self, i: int):
        def inject(module, args, output):
            hidden = _hidden_of(output)
            source = self._source
            if source is None or source.shape != hidden.shape:
                return output  # e.g. a layer called outside a full forward
            gate = self.gates[i].to(hidden.dtype)
            delta = self.proj[i](source.to(self.proj[i].weight.dtype)).to(hidden.dtype)  # (B, L, H)
            new = hidden + gate * delta
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return inject

    def gate_norms(self) -> list[float]:
        return [float(g) for g in self.gates.detach().float().norm(dim=-1)]
