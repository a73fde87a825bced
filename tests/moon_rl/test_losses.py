"""InfoNCE maths on values small enough to compute by hand (moon_rl/head/losses.py)."""

import math

import pytest
import torch

from moon_rl.head.losses import group_info_nce, info_nce

E1, E2 = [1.0, 0.0], [0.0, 1.0]


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_two_pairs_known_value_and_temperature():
    q = t([E1, E2])
    pos = torch.eye(2, dtype=torch.bool)
    # logits of q1 are [1, 0] / T: loss = -log(e^{1/T} / (e^{1/T} + 1)) = log(1 + e^{-1/T}), same for q2.
    loss, stats = info_nce(q, q, pos, temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    loss_half, _ = info_nce(q, q, pos, temperature=0.5)
    assert loss_half.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    # A lower temperature sharpens the softmax: a correctly ranked positive costs less.
    assert loss_half < loss
    assert (stats.n_anchors, stats.n_correct_top1, stats.accuracy) == (2, 2, 1.0)


def test_multi_positive_averages_log_probs_of_positives():
    q = t([E1])
    c = t([E1, [0.6, 0.8], [-1.0, 0.0]])
    pos = torch.tensor([[True, True, False]])
    loss, stats = info_nce(q, c, pos, temperature=1.0)
    log_z = math.log(math.exp(1.0) + math.exp(0.6) + math.exp(-1.0))
    expected = -0.5 * ((1.0 - log_z) + (0.6 - log_z))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats.n_correct_top1 == 1


def test_wrong_top1_counts_as_miss():
    q = t([E1])
    c = t([E1, [0.0, 1.0]])
    loss, stats = info_nce(q, c, torch.tensor([[False, True]]), temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(1.0)), rel=1e-6)  # -log(e^0 / (e^1 + e^0))
    assert (stats.n_anchors, stats.n_correct_top1, stats.accuracy) == (1, 0, 0.0)


def test_symmetric_is_mean_of_both_directions():
    q = t([E1, [0.6, 0.8]])
    c = t([[0.8, 0.6], E2, [-1.0, 0.0]])
    pos = torch.tensor([[True, False, False], [False, True, False]])
    forward, _ = info_nce(q, c, pos, temperature=0.5)
    backward, _ = info_nce(c, q, pos.T, temperature=0.5)  # candidate 3 has no positive: not an anchor
    both, _ = info_nce(q, c, pos, temperature=0.5, symmetric=True)
    assert both.item() == pytest.approx(0.5 * (forward.item() + backward.item()), rel=1e-6)
    assert forward.item() != pytest.approx(backward.item())  # the test would be vacuous otherwise
    # Candidate -> query direction by hand for candidate 1 ([0.8, 0.6]): logits [0.8, 0.96] / 0.5.
    c1 = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(1.92)))
    c2 = -math.log(math.exp(1.6) / (math.exp(0.0) + math.exp(1.6)))
    assert backward.item() == pytest.approx((c1 + c2) / 2, rel=1e-5)


def test_candidate_mask_removes_candidates_from_the_softmax():
    q = t([E1])
    c = t([E1, E1, E2])
    pos = torch.tensor([[False, True, False]])
    masked, _ = info_nce(q, c, pos, temperature=1.0, candidate_mask=torch.tensor([[False, True, True]]))
    assert masked.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)  # softmax over [1, 0] only


def test_no_positive_in_batch_gives_zero_loss_with_graph():
    q = t([E1, E2]).requires_grad_()
    loss, stats = info_nce(q, q, torch.zeros(2, 2, dtype=torch.bool))
    assert loss.item() == 0.0 and stats.n_anchors == 0 and math.isnan(stats.accuracy)
    loss.backward()  # must not fail: every process calls backward even on a batch without pairs
    assert q.grad is not None and torch.all(q.grad == 0)


def test_anchors_without_positive_are_left_out_of_the_mean():
    q = t([E1, E2])
    pos = torch.tensor([[True, False], [False, False]])
    loss, stats = info_nce(q, q, pos, temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert stats.n_anchors == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"positive_mask": torch.ones(3, 2, dtype=torch.bool)}, "positive_mask"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, match):
    args = {"queries": t([E1, E2]), "candidates": t([E1, E2]), "positive_mask": torch.eye(2, dtype=torch.bool)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        info_nce(**args)


def test_group_info_nce_excludes_self_and_matches_explicit_masks():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [0.9, 0.3], [0.1, 1.0], [-0.2, 0.8]]), dim=-1)
    groups = torch.tensor([7, 7, 9, 9])
    loss, stats = group_info_nce(emb, groups, temperature=0.1)
    pos = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    not_self = ~torch.eye(4, dtype=torch.bool)
    expected, _ = info_nce(emb, emb, pos, temperature=0.1, candidate_mask=not_self)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats.n_anchors == 4 and stats.n_correct_top1 == 4
    # Without the self exclusion, every anchor would trivially retrieve itself and the loss would differ.
    with_self, _ = info_nce(emb, emb, pos | ~not_self, temperature=0.1)
    assert with_self.item() != pytest.approx(loss.item())


def test_group_info_nce_same_row_rollouts_are_neither_positive_nor_negative():
    # Rows 0 and 1 are two rollouts of one prompt (row 5), rows 2 and 3 of another (row 6); all in group 1.
    emb = t([E1, E1, E2, E2])  # identical rollouts: were they candidates, they would dominate the softmax
    groups = torch.tensor([1, 1, 1, 1])
    rows = torch.tensor([5, 5, 6, 6])
    loss, stats = group_info_nce(emb, groups, rows, temperature=1.0)
    other_row = rows[:, None] != rows[None, :]
    expected, _ = info_nce(emb, emb, other_row, temperature=1.0, candidate_mask=other_row)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # Each anchor has 2 equally similar positives (the other row's rollouts) and nothing else: log 2 exactly.
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)
    assert stats.n_anchors == 4


def test_group_info_nce_scores_against_a_gathered_pool():
    local = t([E1])
    pool = t([E1, [0.0, 1.0], [0.6, 0.8]])  # e.g. gathered from every process; includes the local row
    loss, _ = group_info_nce(
        local,
        torch.tensor([3]),
        torch.tensor([100]),
        temperature=1.0,
        candidates=pool,
        candidate_group_ids=torch.tensor([3, 4, 3]),
        candidate_row_ids=torch.tensor([100, 101, 102]),
    )
    # Candidates after excluding its own row: [0, 1] -> logits [0, 0.6], positive the second.
    assert loss.item() == pytest.approx(-math.log(math.exp(0.6) / (1 + math.exp(0.6))), rel=1e-6)
