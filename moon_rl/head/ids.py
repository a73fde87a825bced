"""What identifies a training row for the contrastive term, and how it travels with a batch.

A row's `id` and `group_id` columns (`ID_COLUMNS`) become (B,) int64 hashes (`hash_labels`), the form that
survives TRL's shuffle and split into micro-batches and can be gathered across processes; the batch keys
below are the one place their names are written. Pooling "input" also carries the rows' own text
(`TEXT_COLUMNS`, tokenized) under `EMBED_IDS_KEY` / `EMBED_MASK_KEY`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import torch

ID_COLUMNS = ("id", "group_id")  # one per row (its own rollouts are not its positives); rows sharing it are positives
TEXT_COLUMNS = ("title", "attributes")  # what pooling "input" embeds (`data_prep.formats.embedding_text`)
GROUP_KEY, ROW_KEY, UID_KEY = "moon_group_ids", "moon_row_ids", "moon_rollout_uids"
EMBED_IDS_KEY, EMBED_MASK_KEY = "moon_embed_input_ids", "moon_embed_attention_mask"
LAYOUT_PREFIX = "moon_layout_"  # the reasoning poolings' layout (`moon_rl.head.reasoning`): moon_layout_input_ids, ...


def stable_hash(label: str) -> int:
    """A 63-bit hash of `label` that is the same in every process and every run (unlike Python's `hash`)."""
    digest = hashlib.blake2b(str(label).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def hash_labels(labels: Iterable[str], device: torch.device | str | None = None) -> torch.Tensor:
    return torch.tensor([stable_hash(x) for x in labels], dtype=torch.long, device=device)


def id_tensors(rows: Sequence[Mapping], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """{GROUP_KEY, ROW_KEY}: the rows' `group_id` and `id` as (B,) int64 hashes."""
    return {GROUP_KEY: hash_labels([r["group_id"] for r in rows], device=device), ROW_KEY: hash_labels([r["id"] for r in rows], device=device)}


def missing_id_columns(columns: Iterable[str] | None) -> list[str]:
    """The `ID_COLUMNS` a dataset lacks ([] when its columns cannot be known up front: an iterable dataset)."""
    return [] if columns is None else [c for c in ID_COLUMNS if c not in set(columns)]
