"""Cross-process gathering for the contrastive loss: negatives come from every process's batch.

`gather_with_grad` uses `torch.distributed.nn.functional.all_gather`, whose backward sends each process
the gradient of its own slice, so the local embeddings receive gradient from every process's loss.
Single-process runs return the inputs unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(
    embeddings: torch.Tensor, *labels: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """(B, D) embeddings and (B,) label tensors from this process -> (sum_p B_p, D) and labels from all.

    Every process must call it with the same B (the trainers' batches are equal-sized per step).
    """
    if world_size() == 1:
        return (embeddings, *labels)
    from torch.distributed.nn.functional import all_gather

    gathered = torch.cat(all_gather(embeddings.contiguous()), dim=0)
    out_labels = []
    for lab in labels:
        parts = [torch.empty_like(lab) for _ in range(world_size())]
        dist.all_gather(parts, lab.contiguous())
        out_labels.append(torch.cat(parts, dim=0))
    return (gathered, *out_labels)
