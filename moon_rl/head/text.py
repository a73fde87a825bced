"""Pooling "input", the sentence-transformers path: the record's own text (`data_prep.formats.embedding_text`:
title plus brand / model number), with no chat template and no reasoning, goes through the policy's backbone
in one short forward of its own, and the mean of its last hidden states is the pooled vector.

Both trainers (`tokenize_records` in the collator / rollout step, `backbone_hidden` in the loss) and
`moon_rl.load().encode` call these functions, and `export-adapter --sentence-transformers` writes the same
computation as Transformer + Pooling(mean) + Dense + Normalize, so what trains is what serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from data_prep.formats import embedding_text
from moon_rl.head.ids import TEXT_COLUMNS

INPUT_MAX_LENGTH = 128  # tokens of an embedding text (titles are far shorter); the same cap in the ST export


def record_texts(rows: Sequence[Mapping]) -> list[str]:
    """The embedding text of each training row (its `title` and `attributes` columns)."""
    title, attributes = TEXT_COLUMNS
    return [embedding_text(row.get(title) or "", row.get(attributes)) for row in rows]


def text_token_ids(tokenizer, texts: Sequence[str], max_length: int = INPUT_MAX_LENGTH) -> list[list[int]]:
    """Token ids of each plain text, as every embedding of a record's own text starts (pooling "input", the reasoning
    layout's text span): truncated to `max_length`; an empty text still gets one token."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    rows = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return [r if r else [tokenizer.eos_token_id or 0] for r in rows]


def tokenize_texts(tokenizer, texts: list[str], max_length: int = INPUT_MAX_LENGTH, device=None) -> dict[str, torch.Tensor]:
    """Plain texts -> right-padded (B, L) input_ids / attention_mask. Padded by hand on the right whatever the
    tokenizer's padding side (TRL sets it to left): positions must start at 0 for every row, as they do when
    sentence-transformers encodes one text."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a VL processor's text tokenizer
    rows = text_token_ids(tokenizer, texts, max_length)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def backbone_hidden(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(B, L) ids/mask -> (B, L, H) last hidden states of the policy's transformer body (LoRA and residual hooks
    included; no LM head: its logits would cost more than the body at this length)."""
    from moon_rl.head.capture import find_backbone, last_hidden

    out = find_backbone(model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    return last_hidden(out)


def backbone_hidden_distinct(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """`backbone_hidden`, with one forward per distinct row: GRPO's G rollouts of a prompt carry the same text, so
    pooling "input" would otherwise run the same text G times. The (N, L, H) result is the distinct rows' states
    gathered back to every row; under autograd the gather's backward sums each copy's gradient into its row."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    rows = torch.cat([ids, mask], dim=1)  # (N, 2L): two rows are the same input only if ids and mask agree
    distinct, back = torch.unique(rows, dim=0, return_inverse=True)  # (U, 2L), (N,)
    if distinct.size(0) == rows.size(0):
        return backbone_hidden(model, batch)
    length = ids.size(1)
    hidden = backbone_hidden(model, {"input_ids": distinct[:, :length], "attention_mask": distinct[:, length:]})  # (U, L, H)
    return hidden.index_select(0, back)  # (N, L, H)


def check_input_pooling(model: nn.Module, dataset, pooling: str = "input") -> None:
    """Poolings "input" and the reasoning ones embed text only, from the dataset's `title` column: say so before
    training starts."""
    from moon_rl.errors import MoonError
    from moon_rl.head.capture import peft_base

    if getattr(peft_base(model).config, "vision_config", None) is not None:
        raise MoonError(f"pooling={pooling!r} embeds the product's text only; a vision-language model needs pooling mean, last or fusion to use its images")
    columns = getattr(dataset, "column_names", None)
    if columns is not None and TEXT_COLUMNS[0] not in columns:
        raise MoonError(f"pooling={pooling!r} embeds each row's {TEXT_COLUMNS[0]!r} column, which the training dataset lacks (columns: {columns}); "
                        "build it with `moon-rl data prepare --task ...`")
