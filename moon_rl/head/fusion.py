"""Multi-head modality fusion (MOON3.0): adaptively combine the raw image signal, the raw text signal and
the model's reasoning into one pooled representation.

For each modality m (image tokens of the prompt, text tokens of the prompt, reasoning/completion tokens)
`num_heads` learned queries attend over that modality's token states only; a learned gate scores every
(modality, head) output and their softmax-weighted sum is the pooled vector.

Initialisation makes the module start as something sensible: queries are zero, so each head's attention
is uniform (mean pooling of its modality), and the gate is zero, so modalities are averaged equally.
A modality with no tokens in a row (a text-only product, an empty completion) is left out of that row's
gate instead of contributing a zero vector.

Departure from the paper: the paper does not publish the exact parameterisation; this is the smallest
module with its three ingredients (modality-separated inputs, several heads, a learned gate).
"""

from __future__ import annotations

import torch
from torch import nn

from moon_rl.head.projection import seeded_generator

MODALITIES = ("image", "text", "reasoning")


class ModalityFusion(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int = 4, seed: int = 0):
        super().__init__()
        self.num_heads = num_heads
        self.hidden_size = hidden_size
        n_slots = len(MODALITIES) * num_heads
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.queries = nn.Parameter(torch.zeros(len(MODALITIES), num_heads, hidden_size))
        self.gate = nn.Linear(hidden_size, 1)
        self.slot_bias = nn.Parameter(torch.zeros(n_slots))
        with torch.no_grad():
            std = hidden_size**-0.5
            self.key.weight.copy_(torch.randn(hidden_size, hidden_size, generator=seeded_generator(seed)) * std)
            self.gate.weight.zero_()
            self.gate.bias.zero_()

    def forward(
        self, hidden: torch.Tensor, masks: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, L, H); masks: modality name -> (B, L) bool/0-1. Returns pooled (B, H) and gate (B, M*heads)."""
        hidden = hidden.to(self.key.weight.dtype)
        keys = self.key(hidden)  # (B, L, H)
        slots, present = [], []
        for m, name in enumerate(MODALITIES):
            mask = masks.get(name)
            if mask is None:
                mask = torch.zeros(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
            mask = mask.bool()
            scores = torch.einsum("blh,nh->bnl", keys, self.queries[m]) / self.hidden_size**0.5  # (B, heads, L)
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
            attn = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)  # all-masked rows -> zeros
            slots.append(torch.einsum("bnl,blh->bnh", attn, hidden))  # (B, heads, H)
            present.append(mask.any(dim=1, keepdim=True).expand(-1, self.num_heads))  # (B, heads)
        slot_states = torch.cat(slots, dim=1)  # (B, M*heads, H)
        slot_present = torch.cat(present, dim=1)  # (B, M*heads)
        logits = self.gate(slot_states).squeeze(-1) + self.slot_bias  # (B, M*heads)
        logits = logits.masked_fill(~slot_present, float("-inf"))
        gate = torch.nan_to_num(logits.softmax(dim=-1), nan=0.0)
        pooled = torch.einsum("bs,bsh->bh", gate, slot_states)
        return pooled, gate

    def modality_weights(self, gate: torch.Tensor) -> dict[str, float]:
        """Mean gate mass per modality over a batch (for logging): sums to 1 per row."""
        per_mod = gate.detach().float().view(gate.size(0), len(MODALITIES), self.num_heads).sum(-1).mean(0)
        return {name: float(per_mod[i]) for i, name in enumerate(MODALITIES)}
