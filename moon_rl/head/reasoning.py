"""The reasoning embedding's layout: the record's own text, a fixed cue, the attribute reasoning, an end token, in
one right-padded sequence, and the vector read after it (poolings `reasoning` and `reasoning_token`).

    [ offer text (as pooling "input" tokenizes it) | cue "\\nattributes:" | reasoning | end token (eos) | pad ... ]
      -- text mask -----------------------------   -- reasoning mask ------------------------------
                                                                   -- next-token targets -----

Training (`MoonSFTTrainer`, the gold trace from `data_prep.identifier_trace`) and serving (`MoonModel.encode`, the
model's own greedy reasoning, or a cached one) build this layout with the same function, `reasoning_layout`, from
(text, reasoning) strings, and pool it with the same table (`moon_rl.head.pooling`), so the vector a given reasoning
trains is the vector `encode` serves for it. Because the text comes first and attention is causal, the mean over
the text span of this one forward *is* the no-reasoning vector (pooling "input"): a run trains both (an InfoNCE
term on each) and serves both, a cheap index and a reasoning-aware one, from one model.

UME-R1 reads an embedding token after `</think>` (`reasoning_token` here: the end token's state, which has seen
the text and the reasoning); Think-Then-Embed / Embed-RL embed input + reasoning together (`reasoning`: the mean
over both spans). Both are in the pooling table; benchmarks/pretrained.py measured them against each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from moon_rl.head.text import text_token_ids

REASONING_CUE = "\nattributes:"  # what the model continues from, at training and serving time alike


def reasoning_prompt_ids(tokenizer, texts: Sequence[str]) -> tuple[list[list[int]], int]:
    """Token ids of text + cue per row (the prefix the model reasons from, and the layout's first spans), and the
    cue's length."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    rows = text_token_ids(tokenizer, texts)  # the tokens pooling "input" embeds: the text span is that vector
    cue = tokenizer(REASONING_CUE, add_special_tokens=False)["input_ids"]
    return [r + cue for r in rows], len(cue)


def reasoning_ids(tokenizer, reasonings: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids of each reasoning (a leading space: it continues the cue), at most `max_tokens`."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    return [ids[:max_tokens] for ids in tokenizer([" " + r.strip() for r in reasonings], add_special_tokens=False)["input_ids"]]


def reasoning_layout(tokenizer, texts: Sequence[str], reasonings: Sequence[str], max_tokens: int, device=None) -> dict[str, torch.Tensor]:
    """(B, L) input_ids / attention_mask, and bool masks `text`, `reasoning` (cue + reasoning + end) and `targets`
    (the reasoning's tokens and the end token: what the next-token term trains), right-padded, positions from 0."""
    if len(texts) != len(reasonings):
        raise ValueError(f"{len(texts)} texts but {len(reasonings)} reasonings")
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    prompts, cue_len = reasoning_prompt_ids(tok, texts)
    bodies = reasoning_ids(tok, reasonings, max_tokens)
    end = tok.eos_token_id if tok.eos_token_id is not None else 0
    rows = [p + b + [end] for p, b in zip(prompts, bodies)]
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    shape = (len(rows), width)
    ids = torch.full(shape, pad, dtype=torch.long)
    attention = torch.zeros(shape, dtype=torch.long)
    text, reasoning, targets = (torch.zeros(shape, dtype=torch.bool) for _ in range(3))
    for i, (p, b) in enumerate(zip(prompts, bodies)):
        n_text, n_prompt, n = len(p) - cue_len, len(p), len(p) + len(b) + 1
        ids[i, :n] = torch.tensor(rows[i], dtype=torch.long)
        attention[i, :n] = 1
        text[i, :n_text] = True
        reasoning[i, n_text:n] = True
        targets[i, n_prompt:n] = True
    out = {"input_ids": ids, "attention_mask": attention, "text": text, "reasoning": reasoning, "targets": targets}
    return {k: v.to(device) for k, v in out.items()}


def layout_masks(layout: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The pooling table's masks of a reasoning layout (no image tokens)."""
    return {"text": layout["text"], "reasoning": layout["reasoning"], "image": torch.zeros_like(layout["text"])}


def next_token_nll(hidden: torch.Tensor, input_ids: torch.Tensor, targets: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
    """Mean next-token NLL of the `targets` tokens, from the last hidden states (B, L, H): logits only at the
    positions that predict a target (a full-vocabulary projection of every position would cost more than the body)."""
    predict = targets[:, 1:]  # (B, L-1): position t-1 predicts token t
    states = hidden[:, :-1][predict]  # (T, H)
    if states.size(0) == 0:
        return hidden.sum() * 0.0  # nothing to predict: a zero that keeps the graph
    logits = lm_head(states.to(lm_head.weight.dtype)).float()  # (T, V)
    return F.cross_entropy(logits, input_ids[:, 1:][predict])
