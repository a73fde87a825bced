"""The projection head: a pooled hidden state (B, H) -> an L2-normalised embedding (B, D), cosine geometry.

`dim=None` means no projection: the embedding is the pooled hidden state itself (D = H), L2-normalised, as
sentence-transformers' Transformer + Pooling + Normalize computes it. That is the default: a randomly
initialised projection starts the contrastive term from a scrambled copy of the pretrained geometry, and on
SmolLM2-135M + abt-buy it trailed a projection-free loop at equal steps (benchmarks/sft_vs_plain.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def seeded_generator(seed: int) -> torch.Generator:
    """Add-on weights are drawn from their own generator so that adding them never shifts the global RNG
    (which would change LoRA init and sampling, and break equivalence with the unmodified TRL trainer)."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


class EmbeddingHead(nn.Module):
    """Linear projection of a pooled hidden state to `dim` (none when `dim` is None), then L2 normalisation."""

    def __init__(self, hidden_size: int, dim: int | None = None, seed: int = 0):
        super().__init__()
        self.out_features = hidden_size if dim is None else dim
        self.proj = None if dim is None else nn.Linear(hidden_size, dim)
        if self.proj is None:
            return
        with torch.no_grad():
            bound = 1.0 / hidden_size**0.5
            self.proj.weight.copy_(torch.empty(dim, hidden_size).uniform_(-bound, bound, generator=seeded_generator(seed)))
            self.proj.bias.zero_()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        # Project in the head's own dtype (fp32 by default) so bf16 policies still get stable similarities.
        if self.proj is None:
            return F.normalize(pooled.float(), dim=-1)
        return F.normalize(self.proj(pooled.to(self.proj.weight.dtype)), dim=-1)
