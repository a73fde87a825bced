"""The pooling table: how a policy's hidden states (B, L, H) become one vector (B, H) per row, with modes by
name as sentence-transformers' `Pooling(pooling_mode=...)` has them. Every embedding moon-rl computes, in both
trainers and in `moon_rl.load().encode`, goes through `pool`.

| mode     | reads the tokens of           | reduction                                        |
| -------- | ----------------------------- | ------------------------------------------------ |
| `mean`   | the reasoning (completion)    | mean                                             |
| `last`   | the reasoning (completion)    | the state at its last token                      |
| `input`  | the record's own plain text   | mean (a short forward of its own, `head/text.py`) |
| `fusion` | image, prompt text, reasoning | multi-head modality fusion (`head/fusion.py`)    |
| `reasoning`       | the record's text + its reasoning | mean (`head/reasoning.py` layout)      |
| `reasoning_token` | the token that ends the reasoning | its state (UME-R1's embedding token)   |

Which tokens are which comes from boolean (B, L) masks named "image", "text" and "reasoning"
(`modality_masks` for a chat prompt + completion, `input_masks` for plain text). A model without a head
(zero-shot) is the usual decoder-LM baseline: `headless_embedding`, the mean over every attended token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POOLINGS = ("mean", "last", "fusion", "input", "reasoning", "reasoning_token")
# Poolings that read the vector after the record's own text + cue + reasoning (`moon_rl.head.reasoning` layout):
# the model writes its reasoning first, and the same forward's text span gives the no-reasoning ("input") vector.
REASONING_POOLINGS = ("reasoning", "reasoning_token")
# The masks each reduction mode reads (their union); fusion reads all three modalities.
SPANS = {"mean": ("reasoning",), "last": ("reasoning",), "input": ("text",), "reasoning": ("text", "reasoning"), "reasoning_token": ("reasoning",)}


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H), (B, L) -> (B, H). Rows with an empty mask give zeros rather than nan."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H), (B, L) -> (B, H): state at the last masked-in position (position 0 for an empty mask)."""
    positions = torch.arange(mask.size(1), device=mask.device).expand_as(mask)  # (B, L)
    last = torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values  # (B,)
    return hidden[torch.arange(hidden.size(0), device=hidden.device), last]


REDUCTIONS = {"mean": mean_pool, "last": last_token_pool, "input": mean_pool, "reasoning": mean_pool, "reasoning_token": last_token_pool}


def pooled_span(mode: str, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, L) bool: the tokens mode `mode` reads. A row where it is empty has nothing to embed."""
    names = ("reasoning", "image", "text") if mode == "fusion" else SPANS[mode]
    span = masks[names[0]].bool()
    for name in names[1:]:
        span = span | masks[name].bool()
    return span


def pool(mode: str, hidden: torch.Tensor, masks: dict[str, torch.Tensor], fusion=None) -> tuple[torch.Tensor, dict[str, float]]:
    """hidden (B, L, H) -> pooled (B, H) by mode name, and loggable values (fusion's gate mass per modality)."""
    if mode == "fusion":
        if fusion is None:
            raise ValueError("pooling 'fusion' needs its ModalityFusion module")
        pooled, gate = fusion(hidden, masks)
        return pooled, {f"fusion_gate/{k}": v for k, v in fusion.modality_weights(gate).items()}
    if mode not in REDUCTIONS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
    return REDUCTIONS[mode](hidden, pooled_span(mode, masks)), {}


def headless_embedding(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """A model with no head: L2-normalised mean over every attended token, (B, L, H) -> (B, H) float32."""
    return F.normalize(mean_pool(hidden.float(), attention_mask), dim=-1)


# ---- the masks the modes read -----------------------------------------------------------------------


def modality_masks(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    reasoning_mask: torch.Tensor,
    image_token_id: int | None = None,
) -> dict[str, torch.Tensor]:
    """Boolean (B, L) masks of a chat prompt + completion: image tokens, prompt text tokens, reasoning tokens."""
    attn = attention_mask.bool()
    reasoning = reasoning_mask.bool() & attn
    image = (input_ids == image_token_id) & attn if image_token_id is not None else torch.zeros_like(attn)
    text = attn & ~reasoning & ~image
    return {"image": image, "text": text, "reasoning": reasoning}


def input_masks(attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The masks of a plain-text embedding batch: every attended token is text."""
    attn = attention_mask.bool()
    return {"text": attn, "reasoning": attn, "image": torch.zeros_like(attn)}


def completion_mask_of(attention_mask: torch.Tensor, completion_width: int) -> torch.Tensor:
    """(B, P+C) attention mask of TRL's prompt + completion layout -> (B, P+C) mask of the last C columns
    (the completion, i.e. the reasoning)."""
    reasoning = torch.zeros_like(attention_mask)
    reasoning[:, -completion_width:] = attention_mask[:, -completion_width:]
    return reasoning
