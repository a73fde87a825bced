"""Contrastive maths as pure functions of tensors (no model, no trainer), unit-tested on known values.

Shapes: N embeddings of dimension D, L2-normalised by the caller (the embedding head does it).

- `info_nce(queries, candidates, positive_mask, ...)`: the general multi-positive InfoNCE.
- `group_info_nce(embeddings, group_ids, row_ids, ...)`: in-batch InfoNCE where rows that share a
  `group_id` are positives. Embeddings that come from the *same row* (GRPO's `num_generations` rollouts
  of one prompt) are neither positives nor negatives of each other: they would make the task trivial
  (same prompt -> near-identical states) and say nothing about matching two views of a product.
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class ContrastiveStats:
    """What the loss saw: anchors with at least one positive, and how many of them rank a positive first."""

    n_anchors: int
    n_correct_top1: int

    @property
    def accuracy(self) -> float:
        return self.n_correct_top1 / self.n_anchors if self.n_anchors else float("nan")


def info_nce(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    positive_mask: torch.Tensor,
    temperature: float = 0.05,
    candidate_mask: torch.Tensor | None = None,
    symmetric: bool = False,
) -> tuple[torch.Tensor, ContrastiveStats]:
    """Multi-positive InfoNCE (SupCon-style average over each anchor's positives).

    Args:
        queries: (Q, D) anchors.
        candidates: (C, D) what each anchor is scored against.
        positive_mask: (Q, C) bool, True where candidate c is a positive of query q.
        temperature: softmax temperature on cosine similarities (0.05 is common for normalised embeddings).
        candidate_mask: (Q, C) bool, False where c must be ignored for q (itself, its own rollouts).
            Defaults to all True. Positives must be allowed candidates.
        symmetric: also score candidates -> queries (CLIP-style) and average both directions.

    Returns:
        (loss, stats). The loss is the mean over anchors that have at least one positive:
        loss_q = -mean_{p in P(q)} log softmax_c(s_qc / t)[p]. When no anchor has a positive the loss is a
        zero that still carries the graph (so backward works on every process) and `stats.n_anchors == 0`:
        the caller decides whether that is an error (the samplers in moon-rl make it rare).
    """
    if queries.dim() != 2 or candidates.dim() != 2 or queries.size(1) != candidates.size(1):
        raise ValueError(f"expected (Q, D) and (C, D) embeddings, got {tuple(queries.shape)} and {tuple(candidates.shape)}")
    if positive_mask.shape != (queries.size(0), candidates.size(0)):
        raise ValueError(f"positive_mask must be (Q, C) = {(queries.size(0), candidates.size(0))}, got {tuple(positive_mask.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    allowed = torch.ones_like(positive_mask) if candidate_mask is None else candidate_mask
    positives = positive_mask & allowed
    loss, stats = _directional(queries, candidates, positives, allowed, temperature)
    if symmetric:
        loss_t, stats_t = _directional(candidates, queries, positives.T, allowed.T, temperature)
        loss = 0.5 * (loss + loss_t)
    return loss, stats


def _directional(q, c, positives, allowed, temperature):
    logits = (q @ c.T).float() / temperature  # (Q, C)
    logits = logits.masked_fill(~allowed, float("-inf"))
    log_prob = logits.log_softmax(dim=-1)
    n_pos = positives.sum(dim=-1)  # (Q,)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return (q.sum() + c.sum()) * 0.0, ContrastiveStats(0, 0)
    # Zero out non-positives before summing: -inf * 0 would be nan.
    pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=-1)
    per_anchor = -(pos_log_prob[has_pos] / n_pos[has_pos])
    top1 = logits.argmax(dim=-1)
    correct = positives.gather(1, top1.unsqueeze(1)).squeeze(1) & has_pos
    return per_anchor.mean(), ContrastiveStats(int(has_pos.sum()), int(correct.sum()))


def group_masks(
    query_groups: torch.Tensor,
    candidate_groups: torch.Tensor,
    query_rows: torch.Tensor,
    candidate_rows: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive_mask, candidate_mask), both (Q, C): same group and different row / different row."""
    other_row = query_rows[:, None] != candidate_rows[None, :]
    same_group = query_groups[:, None] == candidate_groups[None, :]
    return same_group & other_row, other_row


def group_info_nce(
    embeddings: torch.Tensor,
    group_ids: torch.Tensor,
    row_ids: torch.Tensor | None = None,
    temperature: float = 0.05,
    candidates: torch.Tensor | None = None,
    candidate_group_ids: torch.Tensor | None = None,
    candidate_row_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ContrastiveStats]:
    """In-batch InfoNCE with positives defined by shared group ids.

    Args:
        embeddings: (N, D) local anchors.
        group_ids: (N,) int64 group labels (hash strings with `moon_rl.head.ids.stable_hash`).
        row_ids: (N,) int64 row labels; defaults to `arange(N)` (every embedding its own row).
        candidates / candidate_group_ids / candidate_row_ids: the pool to score against (for example the
            embeddings gathered from every process, which include the local ones); defaults to the anchors.

    An all-zero embedding means "nothing to embed" (`MoonExtras.embed` of a row with no token to pool): such
    rows are neither anchors nor candidates, so they cannot count as identical positives of each other.
    """
    if row_ids is None:
        row_ids = torch.arange(embeddings.size(0), device=embeddings.device)
    if candidates is None:
        candidates, candidate_group_ids, candidate_row_ids = embeddings, group_ids, row_ids
    positive_mask, candidate_mask = group_masks(group_ids, candidate_group_ids, row_ids, candidate_row_ids)
    present = embeddings.detach().ne(0).any(dim=1)  # (N,)
    candidate_present = candidates.detach().ne(0).any(dim=1)  # (C,)
    candidate_mask = candidate_mask & candidate_present[None, :]
    positive_mask = positive_mask & candidate_mask & present[:, None]
    return info_nce(embeddings, candidates, positive_mask, temperature, candidate_mask=candidate_mask)
