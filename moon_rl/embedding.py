"""The embedding head and the pooling functions that turn a policy's hidden states into one vector.

Pooling (pure functions, shapes in comments):
- `mean_pool(hidden, mask)`: mean over the positions where mask is 1 (the reasoning span by default:
  the completion tokens, i.e. the model's own attribute reasoning and answer).
- `last_token_pool(hidden, mask)`: the state at the last position where mask is 1.
The multi-head modality fusion pooling lives in `moon_rl/modules/fusion.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("mean", "last", "fusion")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H), (B, L) -> (B, H). Rows with an empty mask give zeros rather than nan."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H), (B, L) -> (B, H): state at the last masked-in position (position 0 for an empty mask)."""
    positions = torch.arange(mask.size(1), device=mask.device).expand_as(mask)  # (B, L)
    last = torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values  # (B,)
    return hidden[torch.arange(hidden.size(0), device=hidden.device), last]


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
