"""The projection head: a pooled hidden state (B, H) -> an L2-normalised embedding (B, D), cosine geometry."""

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
    """Linear projection of a pooled hidden state to `dim`, then L2 normalisation (cosine geometry)."""

    def __init__(self, hidden_size: int, dim: int = 256, seed: int = 0):
        super().__init__()
        self.proj = nn.Linear(hidden_size, dim)
        with torch.no_grad():
            bound = 1.0 / hidden_size**0.5
            self.proj.weight.copy_(torch.empty(dim, hidden_size).uniform_(-bound, bound, generator=seeded_generator(seed)))
            self.proj.bias.zero_()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        # Project in the head's own dtype (fp32 by default) so bf16 policies still get stable similarities.
        return F.normalize(self.proj(pooled.to(self.proj.weight.dtype)), dim=-1)
