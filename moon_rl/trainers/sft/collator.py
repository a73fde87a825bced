"""`MoonCollator`: TRL's SFT collator with the contrastive term's columns carried through as tensors: the rows'
`id` / `group_id` as (B,) int64 hashes, for pooling "input" their own text, tokenized for its own forward, and for
the reasoning poolings their text + cue + reasoning layout (`moon_rl.head.reasoning`), the reasoning being the
cold-start trace written from the row's fields (`data_prep.identifier_trace`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from data_prep.identifier_trace import identifier_trace
from moon_rl.head.ids import EMBED_IDS_KEY, EMBED_MASK_KEY, ID_COLUMNS, LAYOUT_PREFIX, TEXT_COLUMNS, id_tensors
from moon_rl.head.reasoning import reasoning_layout
from moon_rl.head.text import record_texts, tokenize_texts


class MoonCollator:
    """Wraps a TRL collator: takes `id`/`group_id` out of each example, collates the rest as TRL would, and
    adds them back as (B,) int64 hashes, the form that can be gathered across processes."""

    def __init__(
        self, inner: Callable[[list[dict[str, Any]]], dict[str, Any]], drop: tuple[str, ...] = (), embed_tokenizer=None,
        reasoning_tokens: int | None = None,
    ):
        self.inner = inner
        self.drop = drop  # columns kept only for the sampler (hard_negatives_by), not for the model
        self.embed_tokenizer = embed_tokenizer  # pooling "input" / reasoning: the rows' own text, tokenized for its own forward
        self.reasoning_tokens = reasoning_tokens  # reasoning poolings: the layout, its reasoning capped at this many tokens

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        # Copies without our columns (the VL collator edits examples in place; TRL's would reject extra keys).
        ours = (*ID_COLUMNS, *(TEXT_COLUMNS if self.embed_tokenizer else ()), *self.drop)
        rows = [{k: ex.get(k) for k in ours} for ex in examples]
        batch = self.inner([{k: v for k, v in ex.items() if k not in ours} for ex in examples])
        if all(r[c] is not None for r in rows for c in ID_COLUMNS):
            batch.update(id_tensors(rows))
        if self.embed_tokenizer and self.reasoning_tokens:
            traces = [identifier_trace(r.get(TEXT_COLUMNS[0]) or "", r.get(TEXT_COLUMNS[1])) for r in rows]
            layout = reasoning_layout(self.embed_tokenizer, record_texts(rows), traces, self.reasoning_tokens)
            batch.update({LAYOUT_PREFIX + k: v for k, v in layout.items()})
        elif self.embed_tokenizer:
            texts = record_texts(rows)
            embed = tokenize_texts(self.embed_tokenizer, texts)
            batch[EMBED_IDS_KEY], batch[EMBED_MASK_KEY] = embed["input_ids"], embed["attention_mask"]
        return batch

    def __getattr__(self, name: str) -> Any:  # TRL reads attributes of its collator (return_position_ids, ...)
        if name == "inner":  # not set yet (unpickling in a DataLoader worker): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
