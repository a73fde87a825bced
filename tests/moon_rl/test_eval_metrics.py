"""Metric functions of `moon-rl eval` against hand-computed cases."""

import pytest
import torch
import torch.nn.functional as F

from moon_rl.eval.metrics import (
    attribute_metrics,
    chunked_topk,
    encode_labels,
    first_relevant_ranks,
    knn_vote,
    level_accuracy,
    mrr,
    recall_at_k,
    recall_curve,
    retrieval_summary,
)


def _basis(n):
    return torch.eye(n)


def test_perfect_ranking_gives_recall1_of_one():
    corpus = _basis(4)
    ranks = first_relevant_ranks(corpus.clone(), corpus, [0, 1, 2, 3], [0, 1, 2, 3], chunk_size=3)
    assert ranks.tolist() == [1, 1, 1, 1]
    assert recall_at_k(ranks, 1) == 1.0
    assert mrr(ranks) == 1.0


def test_reversed_ranking_gives_recall1_of_zero():
    # Corpus items score 3, 2, 1, 0 against the query; the only relevant one is the last (score 0).
    query = torch.tensor([[1.0, 0.0]])
    corpus = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranks = first_relevant_ranks(query, corpus, [7], [1, 2, 3, 7], chunk_size=2)
    assert ranks.tolist() == [4]
    assert recall_at_k(ranks, 1) == 0.0
    assert recall_at_k(ranks, 4) == 1.0
    assert mrr(ranks) == pytest.approx(0.25)


def test_ties_are_pessimistic():
    # The relevant item and two distractors have the same vector: both distractors rank ahead of it.
    query = torch.tensor([[1.0, 0.0]])
    corpus = torch.tensor([[0.6, 0.8], [0.6, 0.8], [0.0, 1.0], [0.6, 0.8]])
    ranks = first_relevant_ranks(query, corpus, [5], [1, 2, 3, 5], chunk_size=1)
    assert ranks.tolist() == [3]
    # Two relevant items tied with each other: the first relevant one still ranks 1.
    ranks = first_relevant_ranks(query, torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), [5], [5, 5, 1])
    assert ranks.tolist() == [1]
    # A collapsed model (all vectors equal) gets Recall@1 = 0, not a lucky 1.
    same = torch.ones(5, 3)
    ranks = first_relevant_ranks(same[:2], same, [0, 1], [0, 1, 2, 3, 4])
    assert ranks.tolist() == [5, 5]


def test_exclude_skips_the_query_itself_and_missing_positive_is_zero():
    corpus = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=-1)
    labels = [0, 0, 1]
    # Query = corpus row 0 (excluded); its group partner is row 1, the best remaining item.
    ranks = first_relevant_ranks(corpus[[0, 2]], corpus, [0, 1], labels, exclude=[0, 2])
    assert ranks.tolist() == [1, 0]  # row 2 has no partner once itself is excluded
    with pytest.raises(ValueError, match="rank 0"):
        recall_at_k(ranks, 1)


def test_chunking_does_not_change_ranks_or_topk():
    gen = torch.Generator().manual_seed(0)
    queries = F.normalize(torch.randn(37, 8, generator=gen), dim=-1)
    corpus = F.normalize(torch.randn(101, 8, generator=gen), dim=-1)
    q_lab = torch.randint(0, 20, (37,), generator=gen)
    c_lab = torch.randint(0, 20, (101,), generator=gen)
    full = first_relevant_ranks(queries, corpus, q_lab, c_lab, chunk_size=10_000, query_chunk=10_000)
    small = first_relevant_ranks(queries, corpus, q_lab, c_lab, chunk_size=7, query_chunk=5)
    assert torch.equal(full, small)
    # Brute force: the rank is 1 + #non-relevant items scoring >= the best relevant one.
    scores = queries @ corpus.T
    for q in range(37):
        rel = c_lab == q_lab[q]
        if not rel.any():
            assert full[q] == 0
            continue
        best = scores[q][rel].max()
        assert full[q] == 1 + int(((scores[q] >= best) & ~rel).sum())
    s_full, i_full = scores.topk(5, dim=1)
    s, i = chunked_topk(queries, corpus, 5, chunk_size=6, query_chunk=4, backend="torch")
    assert torch.allclose(s, s_full) and torch.equal(i, i_full)
    s, i = chunked_topk(queries[:2], corpus[:3], 10)  # k larger than the corpus
    assert s.shape == (2, 3)


def test_ranks_match_a_brute_force_mask_with_ties_and_exclusions():
    # Duplicated vectors (ties across chunks), excluded items that are relevant, not relevant, or out of range.
    gen = torch.Generator().manual_seed(3)
    base = F.normalize(torch.randn(40, 6, generator=gen), dim=-1)
    corpus = base[torch.randint(0, 40, (150,), generator=gen)]  # (150, 6), many exact duplicates
    c_lab = torch.randint(0, 30, (150,), generator=gen)
    rows = torch.randint(0, 150, (60,), generator=gen)
    queries, q_lab = corpus[rows], c_lab[rows]
    exclude = rows.clone()
    exclude[::3] = torch.randint(0, 150, (20,), generator=gen)  # some exclude another item
    exclude[1::7] = -1
    exclude[2::11] = 10_000
    got = first_relevant_ranks(queries, corpus, q_lab, c_lab, exclude=exclude, chunk_size=11, query_chunk=7)
    scores = queries @ corpus.T
    for q in range(60):
        own = torch.arange(150) == exclude[q]
        rel = (c_lab == q_lab[q]) & ~own
        if not rel.any():
            assert got[q] == 0
            continue
        best = scores[q][rel].max()
        assert got[q] == 1 + int(((scores[q] >= best - 1e-6) & (c_lab != q_lab[q]) & ~own).sum()), q


def test_recall_curve_and_summary():
    ranks = torch.tensor([1, 2, 5, 11])
    assert recall_curve(ranks, 5) == [0.25, 0.5, 0.5, 0.5, 0.75]
    summary = retrieval_summary(ranks, curve_k=3)
    assert summary["recall@10"] == 0.75 and summary["n_queries"] == 4
    assert summary["mrr"] == pytest.approx((1 + 0.5 + 0.2 + 1 / 11) / 4)


def test_encode_labels_is_consistent_across_lists():
    a, b = encode_labels(["x", "y", "x"], ["y", "z"])
    assert a.tolist() == [0, 1, 0] and b.tolist() == [1, 2]


def test_level_accuracy_by_hand():
    out = level_accuracy(["A > B > C", "A > X", "Q > B > C"], ["A > B > D", "A > B", "A > B > C"])
    assert out["level_1"] == pytest.approx(2 / 3)
    assert out["level_2"] == pytest.approx(1 / 3)
    assert out["level_3"] == 0.0  # two records have 3 levels; neither predicted right to level 3
    assert out["full_path"] == 0.0
    assert level_accuracy(["A > B"], ["A > B"])["full_path"] == 1.0


def test_knn_vote_weights_and_ties():
    # Two "b" votes (0.5 + 0.4 = 0.9) beat one "a" (0.8).
    assert knn_vote([["a", "b", "b"]], torch.tensor([[0.8, 0.5, 0.4]])) == ["b"]
    # Equal weight: the nearest neighbour's label wins.
    assert knn_vote([["a", "b"]], torch.tensor([[0.5, 0.5]])) == ["a"]


def test_attribute_metrics_by_hand():
    completions = [
        '<think>.</think><answer>{"colour": "Grey", "size": "XL"}</answer>',  # colour right, size wrong
        "no answer at all",
        '<think>.</think><answer>{"sleeve": "long"}</answer>',
    ]
    golds = [{"Colour": "gray", "Size": "M"}, {"Colour": "red"}, {"sleeve": "long"}]
    options = [{}, {}, {"sleeve": ["long", "short"]}]
    out = attribute_metrics(completions, golds, options)
    # tp = 1 + 0 + 1 = 2, predicted pairs = 2 + 0 + 1 = 3, gold pairs = 2 + 1 + 1 = 4.
    assert out["micro_f1"] == pytest.approx(2 * 2 / (3 + 4))
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(0.5)
    assert out["per_attribute"] == {"Colour": 0.5, "Size": 0.0, "sleeve": 1.0}
    assert out["closed_set_accuracy"] == 1.0 and out["n_closed_set"] == 1
    assert out["parse_rate"] == pytest.approx(2 / 3)
