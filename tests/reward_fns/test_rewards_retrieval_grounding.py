"""retrieval (batch embeddings, GRPO rows) and grounded_reasoning (think vs answer vs input text)."""

import json

import pytest
import torch
from reward_test_samples import HOSTILE

from reward_fns.errors import RewardError
from reward_fns.grounding import GroundedReasoningReward, think_claims
from reward_fns.guard import find_violations
from reward_fns.retrieval import RetrievalReward, retrieval_scores


def unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


# -- retrieval


def test_rollouts_of_the_same_row_are_not_candidates():
    # Rows a and b are the same product (group g); c is another (group h). Two rollouts per row (GRPO).
    # Rollout 0's sibling (1) is identical to it: it must not count as a positive.
    emb = unit([1, 0], [1, 0], [0.6, 0.8], [0.6, 0.8], [0.8, 0.6], [0.8, 0.6])
    groups, ids = ["g", "g", "g", "g", "h", "h"], ["a", "a", "b", "b", "c", "c"]
    values = RetrievalReward()(["x"] * 6, embeddings=emb, group_id=groups, id=ids)
    # 0: best positive cos 0.6 (row b), negatives cos 0.8 (row c, twice) rank above it -> 1/3.
    assert values[0] == pytest.approx(1 / 3)
    # 2: positive cos 0.6 (row a); negative cos 0.96 twice -> 1/3.
    assert values[2] == pytest.approx(1 / 3)
    assert values[4] is None and values[5] is None  # no positive for group h
    # Making row b's embedding point at row a lifts both to rank 1.
    emb[2] = emb[3] = torch.tensor([1.0, 0.0])
    better = RetrievalReward()(["x"] * 6, embeddings=emb, group_id=groups, id=ids)
    assert better[0] == 1.0 and better[2] == 1.0


def test_retrieval_margin_mode():
    emb = unit([1, 0], [0.6, 0.8], [0, 1])
    values = retrieval_scores(emb, ["g", "g", "h"], ["a", "b", "c"], mode="margin")
    assert values[0] == pytest.approx((0.6 - 0.0) / 2)
    assert values[1] == pytest.approx((0.6 - 0.8) / 2)
    assert values[2] is None
    assert retrieval_scores(emb[:2], ["g", "g"], ["a", "b"], mode="margin") == [None, None]  # no negatives
    assert retrieval_scores(emb[:2], ["g", "g"], ["a", "b"], mode="rr") == [1.0, 1.0]


def test_rank_margin_weighs_the_rank_by_the_soft_margin():
    emb = unit([1, 0], [0.6, 0.8], [0, 1], [0.8, -0.6])
    groups, ids = ["g", "g", "h", "k"], ["a", "b", "c", "d"]
    values = retrieval_scores(emb, groups, ids, mode="rank_margin")
    # 0: positive cos 0.6; negatives cos 0.0 and 0.8, one above it: rank 2, rr = 1/2.
    neg = torch.tensor([0.0, 0.8])
    soft = (torch.softmax(neg / 0.5, dim=0) * neg).sum()
    assert values[0] == pytest.approx(0.5 * (0.6 - float(soft)), abs=1e-6)
    # A sharper positive raises the reward of the same rank: the margin counts, not only the rank.
    sharper = emb.clone()
    sharper[1] = torch.tensor([0.96, 0.28])
    assert retrieval_scores(sharper, groups, ids, mode="rank_margin")[0] > values[0]
    assert values[2] is None and values[3] is None


def test_candidates_from_every_process_replace_the_local_batch():
    """The trainer passes every process's rollouts (gathered) as `candidates`: a local rollout finds its positive there."""
    local = unit([1, 0], [0, 1])
    everyone = unit([1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9])
    cand = (everyone, ["g", "h", "g", "k"], ["a", "b", "c", "d"])
    values = RetrievalReward()(["x", "y"], embeddings=local, group_id=["g", "h"], id=["a", "b"], candidates=cand)
    assert values[0] == 1.0  # row c (another process) is a's positive, ranked first
    assert values[1] is None  # h has no other member anywhere
    assert RetrievalReward()(["x", "y"], embeddings=local, group_id=["g", "h"], id=["a", "b"]) == [None, None]  # locally: none


def test_retrieval_errors_are_loud():
    emb = unit([1, 0], [0, 1])
    with pytest.raises(RewardError, match="embeddings"):
        RetrievalReward()(["x", "y"], group_id=["g", "g"], id=["a", "b"])
    with pytest.raises(RewardError, match="shape"):
        RetrievalReward()(["x", "y", "z"], embeddings=emb, group_id=["g"] * 3, id=["a", "b", "c"])
    nan = emb.clone()
    nan[1, 0] = float("nan")
    with pytest.raises(RewardError, match=r"non-finite embedding.*\[1\]"):
        RetrievalReward()(["x", "y"], embeddings=nan, group_id=["g", "g"], id=["a", "b"])
    with pytest.raises(RewardError, match="mode"):
        RetrievalReward(mode="ndcg")


def test_retrieval_without_ids_uses_prompts_and_ignores_gradients():
    emb = unit([1, 0], [1, 0], [0.9, 0.1]).requires_grad_()
    values = RetrievalReward()(["x"] * 3, embeddings=emb, group_id=["g"] * 3, prompts=["p", "p", "q"])
    assert values == [1.0, 1.0, 1.0]


# -- grounded_reasoning

TITLE = "Navy long sleeve Oxford shirt 70cm"
ANSWER = '{"colour": "navy", "sleeve": "long", "length": "70cm"}'
OPTIONS = json.dumps({"sleeve": ["long", "short"]})


def grounded(think, answer=ANSWER, title=TITLE, options=OPTIONS):
    text = f"<think>\n{think}\n</think>\n<answer>{answer}</answer>"
    return GroundedReasoningReward()([text], title=[title], options=[options])[0]


def test_consistent_template_trace_scores_zero():
    # The SFT template trace written by data_prep.formats: why, then "-> name: value".
    think = (
        "A product from Clothing > Tops. I go through its attributes one by one, using the title.\n"
        "- colour: the title says 'Navy' -> colour: navy\n"
        "- sleeve: the title does not say; the image shows long -> sleeve: long\n"
        "- length: the title says '70cm' -> length: 70 cm"
    )
    assert grounded(think) == 0.0


def test_contradicting_the_answer_is_penalised():
    assert grounded("colour: red\nsleeve: long\nlength: 70cm") == pytest.approx(-1 / 3)
    assert grounded("- colour: the title says 'Navy' -> colour: red") == -1.0
    assert grounded("The colour is probably navy or black. Sleeve: long") == 0.0  # lenient containment


def test_input_text_rules_out_claims():
    # The title names exactly one sleeve option (long): "short" is ruled out even if the answer agrees.
    assert grounded("sleeve: short", answer='{"sleeve": "short"}') == -1.0
    # The title gives 70cm: a claimed 55 cm is ruled out; a claim in another unit cannot be checked.
    assert grounded("length: 55 cm", answer='{"length": "55cm"}') == -1.0
    assert grounded("length: 27 in", answer='{"length": "27in"}') == 0.0


def test_grounding_not_applicable():
    reward = GroundedReasoningReward()
    assert reward(["<answer>{\"colour\": \"navy\"}</answer>"], title=[TITLE]) == [None]  # no think
    assert reward(["<think>colour: navy</think>"], title=[TITLE]) == [None]  # no answer
    assert grounded("nothing about attributes here") == 0.0


def test_grounding_hostile():
    texts = list(HOSTILE.values())
    values = GroundedReasoningReward()(texts, title=[TITLE] * len(texts), options=[OPTIONS] * len(texts))
    assert find_violations(values, len(texts)) == []
    assert all(v is None or -1.0 <= v <= 0.0 for v in values)


def test_think_claims_spellings():
    claims = think_claims("Color: navy\n**Brand name**: Acme\nbrand_name = Acme", ["Colour", "brand name"])
    assert claims == [("Colour", "navy"), ("brand name", "Acme"), ("brand name", "Acme")]
