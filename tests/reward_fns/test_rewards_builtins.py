"""The text built-ins (format, attribute_f1, attribute_choice, category, pairwise_choice, overlong) on
hand-written completions, hostile ones included."""

import json
import pickle

import pytest
from reward_test_samples import GOLD_JSON, GOOD, HOSTILE, trace

from reward_fns.attributes import AttributeChoice, AttributeF1, attribute_hits, attribute_matches
from reward_fns.category import CategoryReward, category_credit
from reward_fns.errors import RewardError
from reward_fns.format import FormatReward, format_score
from reward_fns.guard import find_violations
from reward_fns.length import OverlongReward
from reward_fns.pairwise import PairwiseChoiceReward

OPTIONS = json.dumps({"Sleeve": ["long", "short"], "Colour": ["navy", "red", "white"]})
COLUMNS = {
    "attributes": GOLD_JSON,
    "options": OPTIONS,
    "category": "Clothing > Tops > Shirts",
    "title": "Navy long sleeve shirt 70cm",
    "winner": "A",
}


def run(reward, texts, **overrides):
    """Call a reward the way TRL does: each column repeated per completion, conversational completions."""
    n = len(texts)
    columns = {k: [overrides.get(k, v)] * n for k, v in COLUMNS.items()}
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    ids = [list(t.encode("utf-8", "replace")) for t in texts]
    return reward(completions=completions, prompts=["p"] * n, completion_ids=ids, trainer_state=None, **columns)


ALL = [FormatReward(), AttributeF1(), AttributeChoice(), CategoryReward(), PairwiseChoiceReward(), OverlongReward()]
RANGES = {"format": (0, 1), "attribute_f1": (0, 1), "attribute_choice": (0, 1), "category": (0, 1),
          "pairwise_choice": (0, 1), "overlong": (-1, 0)}


@pytest.mark.parametrize("reward", ALL, ids=lambda r: r.__name__)
def test_hostile_completions_keep_the_contract(reward):
    texts = list(HOSTILE.values())
    values = run(reward, texts)
    assert find_violations(values, len(texts)) == []
    low, high = RANGES[reward.__name__]
    assert all(v is None or low <= v <= high for v in values)


@pytest.mark.parametrize("reward", ALL, ids=lambda r: r.__name__)
def test_rewards_pickle_and_keep_their_name(reward):
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == reward.__name__
    assert run(clone, [GOOD]) == run(reward, [GOOD])


# -- format


@pytest.mark.parametrize(
    "text, score",
    [
        ("<think>a</think>\n<answer>{}</answer>\n", 1.0),
        ("<think>a</think><answer>{}</answer> trailing", 0.75),
        ("preamble <think>a</think><answer>{}</answer>", 0.75),
        ("<think>a</think> between <answer>{}</answer>", 0.75),
        ("<answer>{}</answer><think>a</think>", 0.5),  # wrong order: think after the answer is a tail
        ("<think>a</think><answer></answer>", 0.25),
        ("<think></think><answer>{}</answer>", 0.5),
        ("<think>a</think><think>b</think><answer>{}</answer>", 0.5),
        ("<think>a</think><answer>x</answer><answer>y</answer>", 0.25),
        ("", 0.0),
    ],
)
def test_format_rubric(text, score):
    assert format_score(text) == score


def test_format_prefilled_think():
    assert format_score("a</think><answer>{}</answer>") == 0.5
    assert format_score("a</think><answer>{}</answer>", prefilled_think=True) == 1.0


def test_format_hostile_scores():
    values = dict(zip(HOSTILE, run(FormatReward(), list(HOSTILE.values()))))
    assert values["huge"] == 0.75  # well-formed, but text after </answer>
    assert values["nested_tags"] == 0.0 and values["unbalanced_open"] == 0.0
    assert values["empty_answer"] == 0.25 and values["empty_string"] == 0.0


# -- attribute_f1


def test_attribute_f1_normalises_and_scores_micro_f1():
    values = run(AttributeF1(), [
        GOOD,  # all three right after normalisation (case, "70 cm" vs "70cm")
        trace('{"colour": "red", "sleeve": "long", "length": "70 cm"}'),  # 2 of 3
        trace('{"colour": "navy"}'),  # precision 1, recall 1/3
        trace('{"colour": "navy", "sleeve": "long", "length": "70cm", "fit": "slim", "neck": "crew"}'),
        trace('{"colour": "navy", "category": "Clothing > Tops"}'),  # category is not an attribute
    ])
    assert values == pytest.approx([1.0, 2 / 3, 0.5, 0.75, 0.5])


def test_attribute_f1_without_normalisation_is_exact():
    values = run(AttributeF1(normalize=False), [GOOD, trace(GOLD_JSON)])
    assert values[0] < 1.0 and values[1] == 1.0


def test_attribute_f1_malformed_scores_zero_and_missing_gold_is_none():
    names = ("truncated_json", "duplicate_keys", "empty_answer", "json_list", "no_tags", "empty_string")
    bad = [HOSTILE[k] for k in names]
    assert run(AttributeF1(), bad) == [0.0] * len(bad)
    assert run(AttributeF1(), [GOOD], attributes="{}") == [None]
    assert run(AttributeF1(), [GOOD], attributes="not json") == [None]
    assert run(AttributeF1(), [GOOD], attributes={"colour": "navy"}) == [0.5]  # dicts accepted too


def test_attribute_f1_wrong_typed_values_cost_precision():
    # A list value hedges between options: it must not match, and it counts as a prediction.
    assert run(AttributeF1(), [trace('{"colour": ["navy", "red"], "sleeve": "long"}')]) == [pytest.approx(0.4)]


def test_attribute_f1_synonyms_from_file(tmp_path):
    path = tmp_path / "syn.yaml"
    path.write_text("indigo: navy\n")
    text = trace('{"colour": "Indigo", "sleeve": "long", "length": "70cm"}')
    assert run(AttributeF1(), [text]) == [pytest.approx(2 / 3)]
    assert run(AttributeF1(synonyms=str(path)), [text]) == [1.0]
    with pytest.raises(RewardError, match="syn.txt"):
        AttributeF1(synonyms=str(tmp_path / "syn.txt"))


def test_attribute_matches_for_eval():
    gold = {"Colour": "Navy", "Size": "n/a", "Sleeve": "long"}
    assert attribute_matches({"colour": "navy", "color": "red"}, gold) == (1, 2, 2)  # hedging costs precision
    assert attribute_matches(None, gold) == (0, 0, 2)
    assert attribute_hits({"sleeve": "LONG"}, gold) == {"Colour": False, "Sleeve": True}
    # The category field is not an attribute prediction (its own reward scores it) unless gold has it.
    assert attribute_matches({"colour": "navy", "Category": "Tops"}, gold) == (1, 1, 2)
    assert attribute_matches({"colour": "navy", "Category": "Tops"}, gold, ignore_keys=()) == (1, 2, 2)
    assert attribute_matches({"category": "Tops"}, {"category": "tops"}) == (1, 1, 1)


# -- attribute_choice


def test_attribute_choice():
    values = run(AttributeChoice(), [
        trace('{"sleeve": "Long", "colour": "navy"}'),
        trace('{"sleeve": "short", "colour": "navy"}'),
        trace('{"sleeve": "long"}'),
        trace('{"Sleeve": "long", "sleeve": "short", "colour": "navy"}'),  # hedged sleeve
        HOSTILE["truncated_json"],
    ])
    assert values == [1.0, 0.5, 0.5, 0.5, 0.0]
    assert run(AttributeChoice(), [GOOD], options="{}") == [None]
    assert run(AttributeChoice(), [GOOD], options=json.dumps({"fit": ["slim", "loose"]})) == [None]  # no gold


# -- category


def test_category_hierarchical_credit():
    def answer(path):
        return trace(json.dumps({"colour": "navy", "category": path}))

    values = run(CategoryReward(), [
        answer("Clothing > Tops > Shirts"),
        answer("clothing>tops > SHIRTS"),
        answer("Clothing > Tops > Blouses"),
        answer("Clothing"),
        answer("Clothing > Tops > Shirts > Oxford"),
        answer("Shoes > Tops > Shirts"),
        GOOD,  # no category in the answer
    ])
    assert values == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3, 0.75, 0.0, 0.0])
    assert run(CategoryReward(), [GOOD], category="") == [None]
    assert category_credit(" > ", "A > B") == 0.0


# -- pairwise_choice


def test_pairwise_choice():
    texts = [
        "<think>A is sharper</think><answer>A</answer>",
        "<think>.</think><answer> option a. </answer>",
        '<think>.</think><answer>{"winner": "A"}</answer>',
        "<think>.</think><answer>B</answer>",
        "<think>.</think><answer>A or B</answer>",
        '<think>.</think><answer>{"winner": "A", "loser": "B"}</answer>',
        "A",  # no answer block
    ]
    assert run(PairwiseChoiceReward(), texts) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert run(PairwiseChoiceReward(), ["<answer>A</answer>"], winner=None) == [None]


# -- overlong (TRL's soft overlong punishment, counted in completion_ids)


def test_overlong_reuses_trl():
    reward = OverlongReward(max_len=10, soft_cache=4)
    ids = [[0] * 5, [0] * 8, [0] * 10, [0] * 50]
    assert reward(["a"] * 4, completion_ids=ids) == [0.0, -0.5, -1.0, -1.0]
    with pytest.raises(RewardError, match="completion_ids"):
        reward(["a"])
    with pytest.raises(RewardError, match="soft_cache"):
        OverlongReward(max_len=10, soft_cache=20)
