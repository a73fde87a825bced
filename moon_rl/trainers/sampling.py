"""Batches that keep contrastive positives together: rows sharing a `group_id` land in the same batch.

In-batch InfoNCE only learns from an anchor whose positive is in the same batch. A uniformly shuffled
batch of 8 from a catalog of thousands almost never holds two views of one product, so the contrastive
term would see no positives at all. `group_batches` packs whole groups into batches instead.

- `group_batches(group_ids, batch_size, seed, epoch)`: the pure planning function (no torch), shared by
  the SFT and GRPO trainers. Same arguments -> same batches; a new epoch reshuffles.
- `GroupBatchSampler`: a torch batch sampler over those batches (yields lists of indices), for a
  `DataLoader(batch_sampler=...)`.
- `GroupedSampler`: the same order flattened to single indices, for a `DataLoader(batch_size=...)`.
  Because every planned batch but the last is exactly `batch_size` long, a DataLoader that cuts the flat
  order every `batch_size` indices reproduces the planned batches. This is what the trainers plug into
  HF `Trainer._get_train_sampler`, so Accelerate's sharding, `skip_first_batches` on resume and
  `set_epoch` all work unchanged.
- `GroupRepeatSampler`: TRL's GRPO `RepeatSampler` over the same order (the GRPO trainer's sampler).

Batches are exactly `batch_size` long (bar the last one) on purpose: in multi-process training every
process must contribute the same number of embeddings to the gathered negatives, and Accelerate's
batch sharding assumes equal batch sizes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import Sampler
from trl.trainer.utils import RepeatSampler

from moon_rl.errors import MoonError


def _split_sizes(n: int, batch_size: int) -> list[int]:
    """Sizes of the chunks a group of `n` is cut into: as few as fit in a batch, as even as possible
    (so 5 with batch 4 -> [3, 2], never [4, 1]: a chunk of one has no positive)."""
    if n <= batch_size:
        return [n]
    chunks = -(-n // batch_size)  # ceil
    base, extra = divmod(n, chunks)
    return [base + 1] * extra + [base] * (chunks - extra)


def group_batches(
    group_ids: Sequence[str],
    batch_size: int,
    seed: int,
    epoch: int = 0,
    drop_last: bool = False,
    clusters: Sequence[str] | None = None,
) -> list[list[int]]:
    """Plan the batches of one epoch so that rows sharing a group id share a batch.

    Args:
        group_ids: one label per row (row i has `group_ids[i]`); rows with equal labels are positives.
        batch_size: rows per batch (per process).
        seed, epoch: the shuffle is a function of both, so every process and every resumed run plans
            the same batches, and each epoch plans different ones.
        drop_last: drop the final batch when it is shorter than `batch_size`.
        clusters: optional label per row (e.g. the leaf category) for hard negatives: batches are packed
            from one cluster's groups where possible, so the negatives an anchor sees differ from it in
            fine-grained detail rather than in kind. A group takes its first row's label. Each cluster's
            remainder (less than one batch) is packed with the other remainders; the full batches of all
            clusters are then shuffled together, so training does not walk through the catalog a
            category at a time.

    Returns:
        A list of batches (lists of row indices). Every row appears exactly once (unless dropped with
        the last batch); every batch except possibly the last has exactly `batch_size` rows.

    How: rows are grouped, members shuffled within their group and groups shuffled. Groups larger than
    a batch are cut into near-even chunks (>= 2 rows each whenever the group has >= 2 rows per chunk).
    Chunks ("units") are laid into batches in shuffled order. When the next unit does not fit the space
    left, the earliest later unit that fits goes in instead (singletons fill gaps); failing that, a unit
    already in the batch is swapped for a waiting one exactly `room` rows larger; only when neither works
    is a unit split across two batches. Example, batch 4, groups a:2 b:3 c:1 d:2 ->
    e.g. [[b, b, b, c], [a, a, d, d]].

    A batch size of 1 is allowed but gives no in-batch positives.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed * 1_000_003 + epoch)  # one stream per (seed, epoch); never the global RNG

    members: dict[str, list[int]] = {}
    for index, gid in enumerate(group_ids):
        members.setdefault(str(gid), []).append(index)
    groups = list(members.values())
    for rows in groups:
        rng.shuffle(rows)
    rng.shuffle(groups)
    if clusters is not None:
        if len(clusters) != len(group_ids):
            raise ValueError(f"clusters has {len(clusters)} labels for {len(group_ids)} rows")
        return _pack_by_cluster(groups, [str(c) for c in clusters], batch_size, drop_last, rng)
    units = [chunk for rows in groups for chunk in _chunks(rows, batch_size)]
    return _pack(units, batch_size, drop_last)


def _pack_by_cluster(groups: list[list[int]], clusters: list[str], batch_size: int, drop_last: bool, rng: random.Random) -> list[list[int]]:
    """Full batches from within each cluster, remainders packed together, then all full batches shuffled."""
    by_cluster: dict[str, list[list[int]]] = {}
    for rows in groups:
        by_cluster.setdefault(clusters[rows[0]], []).append(rows)
    full: list[list[int]] = []
    rest: list[list[int]] = []  # groups (or parts of groups) left over from each cluster
    for cluster_groups in by_cluster.values():
        batches = _pack([c for rows in cluster_groups for c in _chunks(rows, batch_size)], batch_size, drop_last=False)
        if batches and len(batches[-1]) < batch_size:
            tail = set(batches.pop())
            rest.extend(kept for rows in cluster_groups if (kept := [i for i in rows if i in tail]))
        full.extend(batches)
    mixed = _pack([c for rows in rest for c in _chunks(rows, batch_size)], batch_size, drop_last)
    if mixed and len(mixed[-1]) < batch_size:
        last = [mixed.pop()]
    else:
        last = []
    full.extend(mixed)
    rng.shuffle(full)
    return full + last


def _chunks(rows: list[int], batch_size: int) -> list[list[int]]:
    out, start = [], 0
    for size in _split_sizes(len(rows), batch_size):
        out.append(rows[start : start + size])
        start += size
    return out


def _pack(units: list[list[int]], batch_size: int, drop_last: bool) -> list[list[int]]:
    """Lay units (each <= batch_size rows) into full batches, keeping each unit whole where possible."""
    # Waiting units, FIFO by position; per-size queues make "earliest unit of size <= r" cost O(batch_size).
    # Units put back (swapped out, or the tail of a split) get new positions at the front (negative).
    queues: dict[int, list[tuple[int, list[int]]]] = {}
    for pos, unit in enumerate(units):
        queues.setdefault(len(unit), []).append((pos, unit))
    for q in queues.values():
        q.reverse()  # pop() from the end = earliest position
    front = 0

    def push_front(unit: list[int]) -> None:
        nonlocal front
        front -= 1
        queues.setdefault(len(unit), []).append((front, unit))  # earliest of its size: goes to the end

    def earliest(max_size: int, exact: bool = False) -> int | None:
        """Size of the queue whose head is the earliest waiting unit of size <= max_size (== if exact)."""
        best_size, best_pos = None, None
        for size, q in queues.items():
            if q and (size == max_size if exact else size <= max_size) and (best_pos is None or q[-1][0] < best_pos):
                best_size, best_pos = size, q[-1][0]
        return best_size

    batches: list[list[int]] = []
    current: list[list[int]] = []  # units in the batch being filled
    while True:
        room = batch_size - sum(len(u) for u in current)
        head = earliest(batch_size)
        if head is None:
            break
        size = earliest(room)
        if size is not None:
            current.append(queues[size].pop()[1])
        else:
            swap = next(
                ((i, need) for i, u in enumerate(current) if (need := len(u) + room) <= batch_size and earliest(need, exact=True)),
                None,
            )
            if swap is not None:
                i, need = swap
                push_front(current.pop(i))
                current.append(queues[need].pop()[1])
            else:  # no fit, no swap: split the next waiting unit across this batch and the next
                unit = queues[head].pop()[1]
                current.append(unit[:room])
                push_front(unit[room:])
        if sum(len(u) for u in current) == batch_size:
            batches.append([i for u in current for i in u])
            current = []
    if current and not drop_last:
        batches.append([i for u in current for i in u])
    return batches


class GroupBatchSampler(Sampler[list[int]]):
    """Yields the batches planned by `group_batches`; call `set_epoch` (Trainer does) to reshuffle."""

    def __init__(self, group_ids: Sequence[str], batch_size: int, seed: int = 0, drop_last: bool = False, clusters: Sequence[str] | None = None):
        self.group_ids = [str(g) for g in group_ids]
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.clusters = None if clusters is None else [str(c) for c in clusters]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        return group_batches(self.group_ids, self.batch_size, self.seed, self.epoch, self.drop_last, self.clusters)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        n = len(self.group_ids)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class GroupedSampler(Sampler[int]):
    """The planned batches flattened into one index order (see module docstring for why this suffices)."""

    def __init__(self, group_ids: Sequence[str], batch_size: int, seed: int = 0, clusters: Sequence[str] | None = None):
        # drop_last is the DataLoader's business here: it sees the flat order and cuts it itself.
        self.batch_sampler = GroupBatchSampler(group_ids, batch_size, seed, drop_last=False, clusters=clusters)

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for batch in self.batch_sampler.batches():
            yield from batch

    def __len__(self) -> int:
        return len(self.batch_sampler.group_ids)


def batch_clusters(dataset: Any, column: str | None) -> list[str] | None:
    """The per-row cluster labels of `hard_negatives_by`, read from the training dataset (None when unset)."""
    if column is None:
        return None
    columns = list(getattr(dataset, "column_names", None) or [])
    if column not in columns:
        raise MoonError(
            f"hard_negatives_by={column!r}: the training dataset has no such column (it has {', '.join(columns)}); "
            "name one of those (`moon-rl data prepare` writes 'category') or unset hard_negatives_by"
        )
    return [str(v) for v in dataset[column]]


# ---- GRPO: TRL's RepeatSampler with a group-aware order ---------------------------------------------


def in_order_batches(n_rows: int, batch_size: int) -> list[list[int]]:
    """`shuffle_dataset=False`: TRL's order (row 0, 1, 2, ...) cut into full batches, e.g. 5 rows, batch 2 ->
    [[0, 1], [2, 3]]. No packing: the user asked for the dataset's order, so a group is together exactly when
    its rows are adjacent there (as `moon-rl data prepare` writes them)."""
    return [list(range(i, i + batch_size)) for i in range(0, n_rows - batch_size + 1, batch_size)]


class GroupRepeatSampler(RepeatSampler):
    """`RepeatSampler` whose chunks of `batch_size` unique rows (one generation batch) hold whole groups
    where possible: the order comes from `group_batches` instead of a plain permutation. Repeats (per
    rollout and per iteration) are the parent's. `set_epoch` reshuffles; with `shuffle_dataset=False` the
    rows come in dataset order, as TRL's (`in_order_batches`), so a group shares a batch when its rows are adjacent."""

    def __init__(self, group_ids: list[str], clusters: list[str] | None = None, **kwargs: Any):
        super().__init__(data_source=group_ids, **kwargs)
        self.group_ids = [str(g) for g in group_ids]
        self.clusters = clusters  # hard negatives: see `group_batches`
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            chunks = group_batches(self.group_ids, self.batch_size, seed=self.seed or 0, epoch=self.epoch, drop_last=True, clusters=self.clusters)
        else:
            chunks = in_order_batches(len(self.group_ids), self.batch_size)
        for chunk in chunks:
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index
