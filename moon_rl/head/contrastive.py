"""The one function that turns a micro-batch into the InfoNCE term both trainers add to TRL's loss, and the one
function that logs it (one name per figure, the same in SFT and GRPO).

    anchors    = this process's rows: extras.embed(hidden, masks)                       (B, D)
    candidates = every process's anchors, gathered with gradient                        (sum_p B_p, D)
                 + bank entries of rollouts in no current micro-batch (GRPO, no grad)   (+ R, D)
    term       = group_info_nce(anchors, candidates; positives share a group_id, a row's own rollouts ignored)

The bank (`CandidateBank`) is the no-grad embeddings of a whole generation batch, for when TRL splits it into
several micro-batches (`steps_per_generation > 1`): a micro-batch's anchors still find positives that landed
in another micro-batch (`moon_rl/trainers/grpo/rollout_embeddings.py` says where they come from).
"""

from __future__ import annotations

import dataclasses

import torch

from moon_rl.head.distributed import gather_with_grad
from moon_rl.head.losses import ContrastiveStats, group_info_nce


@dataclasses.dataclass
class CandidateBank:
    """No-grad embeddings of the whole generation batch, gathered from every process."""

    embeddings: torch.Tensor  # (N_all, D)
    group_ids: torch.Tensor  # (N_all,)
    row_ids: torch.Tensor  # (N_all,)
    uids: torch.Tensor  # (N_all,) one id per rollout, unique across processes

    @classmethod
    def gather(cls, accelerator, embeddings, group_ids, row_ids, uids) -> CandidateBank:
        return cls(*(accelerator.gather(t.contiguous()) for t in (embeddings.detach(), group_ids, row_ids, uids)))


@dataclasses.dataclass
class ContrastiveTerm:
    loss: torch.Tensor  # scalar, with graph
    stats: ContrastiveStats
    info: dict[str, float]  # fusion gate mass, residual gate norms
    n_candidates: int  # candidates each anchor was scored against


def contrastive_term(
    extras,
    hidden: torch.Tensor,
    masks: dict[str, torch.Tensor],
    group_ids: torch.Tensor,
    row_ids: torch.Tensor,
    temperature: float,
    uids: torch.Tensor | None = None,
    bank: CandidateBank | None = None,
    mode: str | None = None,
) -> ContrastiveTerm:
    """In-batch InfoNCE of this micro-batch: anchors = local rows; candidates = every process's micro-batch
    (gathered with gradient) plus, with a bank, its entries whose rollout uid is in none of those micro-batches.
    `mode` pools with another table mode than the head's (a reasoning head's no-reasoning vector: "input")."""
    if bank is not None and uids is None:
        raise ValueError("a candidate bank needs the micro-batch's rollout uids")
    embeddings, info = extras.embed(hidden, masks) if mode is None else extras.embed(hidden, masks, mode=mode)  # (B, D)
    labels = (group_ids, row_ids) if uids is None else (group_ids, row_ids, uids)
    cands, cand_groups, cand_rows, *cand_uids = gather_with_grad(embeddings, *labels)
    if bank is not None:
        rest = ~torch.isin(bank.uids, cand_uids[0])  # rollouts of the generation batch in no current micro-batch
        cands = torch.cat([cands, bank.embeddings[rest].to(cands.dtype)], dim=0)  # (C, D)
        cand_groups = torch.cat([cand_groups, bank.group_ids[rest]])
        cand_rows = torch.cat([cand_rows, bank.row_ids[rest]])
    loss, stats = group_info_nce(
        embeddings, group_ids, row_ids, temperature, candidates=cands, candidate_group_ids=cand_groups, candidate_row_ids=cand_rows
    )
    return ContrastiveTerm(loss, stats, info, cands.size(0))


def log_contrastive(metrics: dict, accelerator, term: ContrastiveTerm, prefix: str = "") -> None:
    """Append the term's figures to a TRL trainer's `_metrics[mode]` (means over the logging window):
    `contrastive_loss` and `retrieval_accuracy` (share of anchors whose top-1 candidate is a positive) only when
    some anchor had a positive, `contrastive/anchors` (summed over processes), `contrastive/candidates`, and the
    add-ons' values (`fusion_gate/*`, `residual_gate_norm/*`). `prefix` names a second term of the same step
    (`input/`: a reasoning head's no-reasoning vector)."""
    device = term.loss.device
    counts = torch.tensor([[term.stats.n_correct_top1, term.stats.n_anchors]], device=device, dtype=torch.float32)
    counts = accelerator.gather(counts).sum(dim=0)  # (2,)
    if counts[1] > 0:  # a micro-batch without any positive pair says nothing about retrieval
        metrics[prefix + "contrastive_loss"].append(accelerator.gather(term.loss.detach().float().reshape(1)).mean().item())
        metrics[prefix + "retrieval_accuracy"].append((counts[0] / counts[1]).item())
    if prefix:
        return  # anchors, candidates and add-on values are the first term's
    metrics["contrastive/anchors"].append(counts[1].item())
    metrics["contrastive/candidates"].append(float(term.n_candidates))
    for key, value in term.info.items():
        metrics[key].append(float(value))
