"""Group-aware batching (moon_rl/trainers/sampling.py): positives share batches, order is reproducible."""

import random
from collections import Counter

import pytest
from torch.utils.data import DataLoader

from moon_rl.trainers.sampling import GroupBatchSampler, GroupedSampler, group_batches


def random_groups(n_groups=60, max_size=5, seed=1):
    rng = random.Random(seed)
    ids = [f"g{g}" for g in range(n_groups) for _ in range(rng.randint(1, max_size))]
    rng.shuffle(ids)
    return ids


def batches_of(batches, group_ids):
    """group -> set of batch numbers holding its rows"""
    where: dict[str, set[int]] = {}
    for b, batch in enumerate(batches):
        for i in batch:
            where.setdefault(group_ids[i], set()).add(b)
    return where


@pytest.mark.parametrize("batch_size", [1, 3, 4, 8])
def test_every_row_once_and_full_batches(batch_size):
    ids = random_groups()
    batches = group_batches(ids, batch_size, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))
    assert all(len(b) == batch_size for b in batches[:-1])
    assert 1 <= len(batches[-1]) <= batch_size


def test_pairs_always_share_a_batch():
    ids = [f"g{i // 2}" for i in range(40)]  # 20 groups of 2, batch 4: packing never has to split
    for epoch in range(5):
        batches = group_batches(ids, 4, seed=3, epoch=epoch)
        assert all(len(b) == 1 for b in batches_of(batches, ids).values())


def test_groups_mostly_stay_whole_and_positives_are_common():
    ids = random_groups()
    batches = group_batches(ids, 8, seed=0)
    where = batches_of(batches, ids)
    sizes = Counter(ids)
    split = [g for g, b in where.items() if len(b) > 1]
    # Only a gap no chunk fits forces a split, and singletons usually fill gaps.
    assert len(split) <= len(batches) // 4
    # A shuffled order would put few pairs together; here most rows of multi-row groups have a positive.
    with_pos = sum(1 for b in batches for i in b if sum(ids[j] == ids[i] for j in b) > 1)
    multi = sum(n for n in sizes.values() if n > 1)
    assert with_pos >= 0.9 * multi


def test_large_group_split_into_chunks_of_at_least_two():
    ids = ["big"] * 5 + [f"s{i}" for i in range(11)]
    for seed in range(10):
        batches = group_batches(ids, 4, seed=seed)
        per_batch = [sum(ids[i] == "big" for i in b) for b in batches]
        assert sum(per_batch) == 5
        assert all(n == 0 or n >= 2 for n in per_batch), (seed, per_batch)


def test_deterministic_per_seed_and_epoch():
    ids = random_groups()
    assert group_batches(ids, 8, seed=5, epoch=2) == group_batches(ids, 8, seed=5, epoch=2)
    assert group_batches(ids, 8, seed=5, epoch=2) != group_batches(ids, 8, seed=5, epoch=3)
    assert group_batches(ids, 8, seed=5) != group_batches(ids, 8, seed=6)


def test_drop_last_and_bad_batch_size():
    ids = [f"g{i}" for i in range(10)]
    assert [len(b) for b in group_batches(ids, 4, seed=0, drop_last=True)] == [4, 4]
    assert [len(b) for b in group_batches(ids, 4, seed=0)] == [4, 4, 2]
    with pytest.raises(ValueError, match="batch_size"):
        group_batches(ids, 0, seed=0)


def test_batch_sampler_and_flat_sampler_give_the_planned_batches():
    ids = random_groups(n_groups=20)
    sampler = GroupBatchSampler(ids, 4, seed=2)
    sampler.set_epoch(1)
    planned = group_batches(ids, 4, seed=2, epoch=1)
    assert list(sampler) == planned and len(sampler) == len(planned)

    flat = GroupedSampler(ids, 4, seed=2)
    flat.set_epoch(1)
    assert len(flat) == len(ids)
    loader = DataLoader(list(range(len(ids))), batch_size=4, sampler=flat, collate_fn=list)
    assert list(loader) == planned  # cutting the flat order every 4 indices reproduces the plan
    flat.set_epoch(2)
    assert list(loader) == group_batches(ids, 4, seed=2, epoch=2)


# ---- hard negatives: batches packed within a cluster (hard_negatives_by) -------------------------------


def clustered_groups(n_groups=48, n_clusters=4, seed=2):
    """Groups of 2-3 rows; every row of a group carries its group's cluster (like a product's category)."""
    rng = random.Random(seed)
    ids, clusters = [], []
    for g in range(n_groups):
        for _ in range(rng.randint(2, 3)):
            ids.append(f"g{g}")
            clusters.append(f"c{g % n_clusters}")
    order = list(range(len(ids)))
    rng.shuffle(order)
    return [ids[i] for i in order], [clusters[i] for i in order]


@pytest.mark.parametrize("batch_size", [4, 8])
def test_clusters_keep_rows_groups_and_full_batches(batch_size):
    ids, clusters = clustered_groups()
    batches = group_batches(ids, batch_size, seed=0, clusters=clusters)
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))
    assert all(len(b) == batch_size for b in batches[:-1])
    # Groups stay whole about as often as with plain packing: hard negatives must not cost the positives.
    def whole(planned):
        return sum(len(where) == 1 for where in batches_of(planned, ids).values())

    assert whole(batches) >= whole(group_batches(ids, batch_size, seed=0)) - 2
    assert whole(batches) >= 0.6 * len(set(ids))


def test_clusters_make_single_category_batches():
    ids, clusters = clustered_groups()
    plain = group_batches(ids, 8, seed=0)
    hard = group_batches(ids, 8, seed=0, clusters=clusters)

    def pure(batches):
        return sum(len({clusters[i] for i in b}) == 1 for b in batches) / len(batches)

    # Only each cluster's remainder can mix; plain packing gives a pure batch only by chance.
    assert pure(hard) >= 0.8
    assert pure(plain) <= pure(hard) - 0.5


def test_clustered_batches_are_shuffled_across_clusters_and_reproducible():
    ids, clusters = clustered_groups(n_groups=96)
    batches = group_batches(ids, 8, seed=5, clusters=clusters)
    labels = [clusters[b[0]] for b in batches]
    changes = sum(a != b for a, b in zip(labels, labels[1:]))
    assert changes > 4  # not one category after another (4 clusters would give 3 changes)
    assert batches == group_batches(ids, 8, seed=5, clusters=clusters)
    assert batches != group_batches(ids, 8, seed=5, epoch=1, clusters=clusters)


def test_clusters_length_must_match():
    with pytest.raises(ValueError, match="3 labels for 4 rows"):
        group_batches(["a", "a", "b", "b"], 2, seed=0, clusters=["x", "x", "y"])


def test_batch_clusters_names_the_missing_column():
    from datasets import Dataset

    from moon_rl.errors import MoonError
    from moon_rl.trainers.sampling import batch_clusters

    ds = Dataset.from_dict({"group_id": ["a", "b"], "category": ["shirts", "shoes"]})
    assert batch_clusters(ds, None) is None
    assert batch_clusters(ds, "category") == ["shirts", "shoes"]
    with pytest.raises(MoonError, match=r"hard_negatives_by='colour'.*group_id, category"):
        batch_clusters(ds, "colour")
