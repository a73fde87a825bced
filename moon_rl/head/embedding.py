"""The embedding head and the pooling functions that turn a policy's hidden states into one vector.

Pooling (pure functions, shapes in comments):
- `mean_pool(hidden, mask)`: mean over the positions where mask is 1 (the reasoning span by default:
  the completion tokens, i.e. the model's own attribute reasoning and answer).
- `last_token_pool(hidden, mask)`: the state at the last position where mask is 1.
The multi-head modality fusion pooling lives in `moon_rl/head/fusion.py`.

Pooling "input" is the sentence-transformers path: the record's own text (`data_prep.formats.embedding_text`:
title plus brand / model number), with no chat template and no reasoning, goes through the policy's backbone
in one short forward of its own (`tokenize_texts` + `backbone_hidden`), and the mean of its last hidden
states is the pooled vector. Training (both trainers) and `moon_rl.load().encode` call these same two
functions, and `export-adapter --sentence-transformers` writes the same computation as Transformer + Pooling
(mean) + Dense + Normalize, so what trains is what serves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("mean", "last", "fusion", "input")
INPUT_MAX_LENGTH = 128  # tokens of an embedding text (titles are far shorter); the same cap in the ST export


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


def tokenize_texts(tokenizer, texts: list[str], max_length: int = INPUT_MAX_LENGTH, device=None) -> dict[str, torch.Tensor]:
    """Plain texts -> right-padded (B, L) input_ids / attention_mask. Padded by hand on the right whatever the
    tokenizer's padding side (TRL sets it to left): positions must start at 0 for every row, as they do when
    sentence-transformers encodes one text."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a VL processor's text tokenizer
    rows = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    rows = [r if r else [tokenizer.eos_token_id or 0] for r in rows]  # an empty text still gets one token
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def backbone_hidden(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, L) ids/mask -> (B, L, H) last hidden states of the policy's transformer body (LoRA and residual hooks
    included; no LM head: its logits would cost more than the body at this length)."""
    from moon_rl.head.capture import _last_hidden, find_backbone

    out = find_backbone(model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    return _last_hidden(out)


def input_masks(attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The modality masks of a plain-text embedding batch: every attended token is text."""
    attn = attention_mask.bool()
    return {"text": attn, "reasoning": attn, "image": torch.zeros_like(attn)}


def check_input_pooling(model: nn.Module, dataset, text_column: str = "title") -> None:
    """Pooling "input" embeds text only, from the dataset's `title` column: say so before training starts."""
    from moon_rl.head.capture import peft_base
    from moon_rl.errors import MoonError

    if getattr(peft_base(model).config, "vision_config", None) is not None:
        raise MoonError("pooling='input' embeds the product's text only; a vision-language model needs pooling mean, last or fusion to use its images")
    columns = getattr(dataset, "column_names", None)
    if columns is not None and text_column not in columns:
        raise MoonError(f"pooling='input' embeds each row's {text_column!r} column, which the training dataset lacks (columns: {columns}); "
                        "build it with `moon-rl data prepare --task ...`")
