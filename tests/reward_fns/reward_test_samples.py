"""Hand-written completions shared by the reward tests, including hostile ones."""

import json

GOLD_ATTRS = {"Colour": "Navy", "Sleeve": "long", "Length": "70 cm"}
GOLD_JSON = json.dumps(GOLD_ATTRS)


def trace(answer: str, think: str = "colour: navy\nsleeve: long") -> str:
    return f"<think>\n{think}\n</think>\n<answer>{answer}</answer>"


GOOD = trace('{"colour": "navy", "sleeve": "Long", "length": "70cm"}')

# name -> completion text; every built-in must score these without raising and within its range.
HOSTILE = {
    "unbalanced_open": "<think>reasoning <answer>{\"colour\": \"navy\"}",
    "unbalanced_close": "reasoning</think></answer>{\"colour\": \"navy\"}</answer>",
    "nested_tags": "<think><think>x</think></think><answer><answer>{\"colour\": \"navy\"}</answer></answer>",
    "huge": "<think>" + "blah " * 200_000 + "</think><answer>" + GOLD_JSON + "</answer>" + "x" * 50_000,
    "huge_json": "<think>t</think><answer>" + "[" * 100_000 + "]" * 100_000 + "</answer>",
    "non_utf8_looking": "<think>\udcff\udcfe\x00\ufffd Ã©</think><answer>{\"colour\": \"\udcff\x00\"}</answer>",
    "nested_json": trace('{"attributes": {"colour": "navy", "sleeve": ["long", "short"]}}'),
    "duplicate_keys": trace('{"colour": "navy", "colour": "red"}'),
    "empty_answer": trace(""),
    "empty_object": trace("{}"),
    "json_list": trace('["navy", "long"]'),
    "truncated_json": trace('{"colour": "na'),
    "empty_string": "",
    "only_whitespace": "   \n\t ",
    "no_tags": "The colour is navy and the sleeves are long.",
    "code_fence": trace('```json\n{"colour": "navy"}\n```'),
}
