"""Stable integer ids for string labels, so group membership can travel as tensors (and across processes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch


def stable_hash(label: str) -> int:
    """A 63-bit hash of `label` that is the same in every process and every run (unlike Python's `hash`)."""
    digest = hashlib.blake2b(str(label).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def hash_labels(labels: Iterable[str], device: torch.device | str | None = None) -> torch.Tensor:
    return torch.tensor([stable_hash(x) for x in labels], dtype=torch.long, device=device)
