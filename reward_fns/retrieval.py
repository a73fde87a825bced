"""`retrieval`: reward rollouts whose embedding ranks a positive high among the batch's candidates.

moon-rl's GRPO trainer passes `embeddings` (a float tensor (N, D), one L2-normalised row per completion)
and the dataset's `group_id` and `id` columns (lists of N strings, aligned with the completions). With
GRPO the `num_generations` rollouts of one prompt share the same `id`.

For rollout i:
  - candidates = every rollout of a *different row* (different `id`); rollouts of i's own row are
    excluded, since they would be trivially similar (same input);
  - positives  = candidates with the same `group_id` (another listing of the same product);
  - negatives  = the other candidates.
`mode="rr"` (default): reciprocal rank of the best positive, 1 / (1 + #negatives scoring higher than the
best positive), in (0, 1]. `mode="margin"`: (best positive cosine - best negative cosine) / 2, in
[-1, 1]; `None` when there are no negatives. `mode="rank_margin"` (UME-R1 / Embed-RL's outcome reward): the
reciprocal rank times (best positive cosine - the negatives' cosines weighted by their softmax at temperature
`tau`, 0.5), so among rollouts that rank their positive first the one that separates it further scores higher.
Either way `None` when i has no positive in the batch (the sampler decides how many positives a batch holds).

Candidates: by default the rollouts of this call. TRL computes rewards on each process's slice; moon-rl's trainer
also passes `candidates` (embeddings, group ids and row ids of every process's rollouts, gathered), so a
rollout is ranked against the whole generation batch as the contrastive term sees it.

Departure from the paper: MOON3.0 optimises retrieval with the contrastive loss only; this reward lets
GRPO also prefer reasoning whose pooled embedding retrieves better (ties count as not higher).
"""

from __future__ import annotations

from typing import Any

from reward_fns.errors import RewardError

__all__ = ["RetrievalReward", "retrieval_scores"]

MODES = ("rr", "margin", "rank_margin")


def retrieval_scores(
    embeddings: Any, group_ids: list[str], row_ids: list[str], mode: str = "rr", candidates: tuple | None = None, tau: float = 0.5,
) -> list[float | None]:
    """Per-rollout retrieval reward (pure function of the batch; see the module docstring).

    >>> import torch
    >>> emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> retrieval_scores(emb, ["g", "g", "h"], ["a", "b", "c"])
    [1.0, 1.0, None]
    >>> [round(x, 3) for x in retrieval_scores(emb, ["g", "g", "h"], ["a", "b", "c"], mode="rank_margin")[:2]]
    [0.8, 0.2]
    """
    import torch
    import torch.nn.functional as F

    emb = torch.as_tensor(embeddings).detach().float().cpu()
    n = len(group_ids)
    if emb.dim() != 2 or emb.shape[0] != n or len(row_ids) != n:
        raise RewardError(
            f"retrieval reward: embeddings of shape {tuple(emb.shape)} do not match {n} completions "
            f"({len(row_ids)} ids); expected (N, D) with one row per completion"
        )
    if not torch.isfinite(emb).all():
        bad = (~torch.isfinite(emb)).any(dim=1).nonzero().flatten().tolist()
        raise RewardError(f"retrieval reward: non-finite embedding for completion(s) {bad[:10]} (diverged training?)")
    emb = F.normalize(emb, dim=-1)
    if candidates is None:
        cand, cand_groups, cand_rows = emb, list(group_ids), list(row_ids)
    else:
        cand, cand_groups, cand_rows = F.normalize(torch.as_tensor(candidates[0]).detach().float().cpu(), dim=-1), list(candidates[1]), list(candidates[2])
    sims = emb @ cand.T  # (N, M) cosine similarities
    groups, rows = list(group_ids), list(row_ids)
    out: list[float | None] = []
    for i in range(n):
        others = [j for j in range(len(cand_rows)) if cand_rows[j] != rows[i]]
        positives = [j for j in others if cand_groups[j] == groups[i]]
        negatives = [j for j in others if cand_groups[j] != groups[i]]
        if not positives:
            out.append(None)
            continue
        best_pos = sims[i, positives].max()
        rr = 1.0 / (1 + (int((sims[i, negatives] > best_pos).sum()) if negatives else 0))
        if mode == "rr":
            out.append(rr)
        elif not negatives:
            out.append(None)
        elif mode == "margin":
            out.append(float((best_pos - sims[i, negatives].max()) / 2))
        else:  # rank_margin: a soft maximum of the negatives, as Embed-RL's reward weighs them
            neg = sims[i, negatives]
            out.append(float(rr * (best_pos - (torch.softmax(neg / tau, dim=0) * neg).sum())))
    return out


class RetrievalReward:
    """Retrieval rank of each rollout's embedding within the batch (`mode`: "rr" or "margin").

    Needs the `embeddings` keyword, which moon-rl's GRPO trainer passes when the contrastive branch is on.
    """

    __name__ = "retrieval"

    def __init__(self, mode: str = "rr"):
        if mode not in MODES:
            raise RewardError(f"retrieval reward: unknown mode {mode!r}; choose one of {list(MODES)}")
        self.mode = mode

    def __call__(
        self,
        completions: list,
        embeddings: Any = None,
        group_id: list | None = None,
        id: list | None = None,  # noqa: A002 - the dataset column is called `id`
        prompts: list | None = None,
        candidates: tuple | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        if embeddings is None:
            raise RewardError(
                "retrieval reward: no `embeddings` keyword; it is passed by moon-rl's GRPO trainer with the "
                "contrastive branch enabled (plain TRL GRPOTrainer does not compute embeddings)"
            )
        if group_id is None:
            raise RewardError(
                "retrieval reward: no `group_id` column in the dataset; "
                "prepare it with `moon-rl data prepare --task grpo`"
            )
        # Rows are told apart by `id`; without it, by the prompt (rollouts of one prompt are one row).
        if id is not None:
            row_ids = [str(x) for x in id]
        elif prompts is not None:
            row_ids = [repr(p) for p in prompts]
        else:
            row_ids = [str(i) for i in range(n)]
        if candidates is not None:  # (embeddings, group ids, row ids) of every process's rollouts
            candidates = (candidates[0], [str(g) for g in candidates[1]], [str(r) for r in candidates[2]])
        return retrieval_scores(embeddings, [str(g) for g in group_id], row_ids, self.mode, candidates)
