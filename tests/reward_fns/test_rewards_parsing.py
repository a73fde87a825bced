"""reward_fns.parsing: completion text, tagged blocks, answer JSON and normalisation never raise."""

import pytest
from reward_test_samples import GOOD, HOSTILE

from reward_fns.parsing import (
    completion_text,
    extract_tagged,
    is_na,
    normalize_key,
    normalize_value,
    parse_answer,
    prepare_synonyms,
)


def test_completion_text_accepts_plain_and_conversational():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "abc"}]) == "abc"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert completion_text(parts) == "ab"
    multi = [
        {"role": "assistant", "content": "x"},
        {"role": "tool", "content": "T"},
        {"role": "assistant", "content": "y"},
    ]
    assert completion_text(multi) == "x\ny"
    assert completion_text(None) == ""
    assert completion_text(b"\xff<answer>") == "\ufffd<answer>"


def test_extract_tagged_takes_last_complete_block():
    assert extract_tagged("<answer>1</answer><answer>2</answer>", "answer") == "2"
    assert extract_tagged("<answer>1</answer><answer>2", "answer") == "1"
    assert extract_tagged("</answer><answer>", "answer") is None
    assert extract_tagged("no tags", "answer") is None


def test_parse_answer_good_and_tolerant():
    assert parse_answer(GOOD) == {"colour": "navy", "sleeve": "Long", "length": "70cm"}
    assert parse_answer(HOSTILE["code_fence"]) == {"colour": "navy"}
    assert parse_answer('<answer>Sure! {"a": 1.5, "b": true, "c": null}</answer>') == {"a": "1.5", "b": "true"}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("duplicate_keys", None),
        ("empty_answer", None),
        ("json_list", None),
        ("truncated_json", None),
        ("unbalanced_open", None),
        ("huge_json", None),
        ("empty_string", None),
        ("no_tags", None),
        ("empty_object", {}),
    ],
)
def test_parse_answer_rejects_malformed(name, expected):
    assert parse_answer(HOSTILE[name]) == expected


def test_parse_answer_keeps_wrong_typed_values_as_text():
    parsed = parse_answer(HOSTILE["nested_json"])
    assert list(parsed) == ["attributes"] and parsed["attributes"].startswith("{")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_parsing_never_raises(name):
    text = HOSTILE[name]
    parse_answer(text)
    parse_answer([{"role": "assistant", "content": text}])
    normalize_value(text[:10_000])


@pytest.mark.parametrize(
    "a, b",
    [
        ("150 mm", "150mm"),
        ("150 Millimetres", "150MM"),
        ("4.50 g", "4.5g"),
        ('12"', "12 inches"),
        ("NAVY", " navy "),
        ("Navy Blue", "navy"),
        ("Dark Grey", "dark gray"),
        ("Women's", "womens"),
        ("T-Shirt", "t shirt"),
        ("Ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
    ],
)
def test_normalize_value_equates_variants(a, b):
    assert normalize_value(a) == normalize_value(b)


@pytest.mark.parametrize("a, b", [("150mm", "15cm"), ("4.5g", "45g"), ("navy", "red"), ("s", "xs")])
def test_normalize_value_keeps_different_values_apart(a, b):
    assert normalize_value(a) != normalize_value(b)


def test_user_synonyms_extend_defaults():
    table = prepare_synonyms({"Burgundy": "Wine Red"})
    assert normalize_value("burgundy", table) == normalize_value("wine red", table)
    assert normalize_value("grey", table) == normalize_value("gray", table)  # defaults kept
    assert normalize_value("burgundy") != normalize_value("wine red")  # not global


def test_keys_and_na():
    assert normalize_key("Brand_Name") == normalize_key("brand name") == normalize_key("Brand-Name")
    assert is_na("N/A") and is_na("null") and not is_na("none of the above")
