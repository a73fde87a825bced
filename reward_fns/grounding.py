"""`grounded_reasoning`: penalise attribute values stated in `<think>` that the answer or the input contradicts.

A cheap consistency check, no model call. Claims are read from the reasoning as `name: value`,
`name = value`, `name is value` or `name -> value`, for the attribute names that occur in the answer or
in the record's `options`; a claim's value runs to the end of its line or sentence, and when it holds an
arrow (the SFT template's `- colour: the title says 'Navy' -> colour: navy`) the value is what follows
the last arrow. A claim is a violation when
  - the answer gives that attribute a value that does not occur in the claim (as whole words, after
    normalisation): "colour: red" then `{"colour": "navy"}`; or
  - the input text (`title`, plus `description` when the dataset has it) rules it out: for a closed-set
    attribute the text names exactly one of its options and the claim names another; for a measurement
    (`55mm`) the text gives measurements in the same unit and none is the claimed one.
Reward = -(violations / claims), in [-1, 0]: 0.0 when consistent or when there are no claims to check;
`None` when the completion has no `<think>` block or no parsable answer (the `format` and attribute
rewards score those). Only the first `max_think_chars` characters of the reasoning are read.

The containment test is deliberately lenient ("could be red or navy -> navy" is consistent with navy):
a cheap check should rather miss a contradiction than punish sound reasoning.
"""

from __future__ import annotations

import re
from typing import Any

from reward_fns.parsing import (
    UNIT_ALIASES,
    completion_text,
    extract_tagged,
    load_json_field,
    normalize_key,
    normalize_value,
    parse_answer,
)

__all__ = ["GroundedReasoningReward", "think_claims", "grounding_violations"]

_LINK = r"(?:[:=]|->|→|\bis\b|\bare\b)"  # "colour: navy", "colour = navy", "colour is navy", "colour -> navy"
_CLAUSE_END = r"(?=\n|\.(?:\s|$)|$)"
_ARROW = re.compile(r"->|→")
_MEASURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([a-z]+)\b")


def think_claims(think: str, names: list[str]) -> list[tuple[str, str]]:
    """(attribute name, stated value) pairs found in the reasoning for the given attribute names.

    >>> think_claims("Colour: navy, from the title.\\n- sleeve: title says 'LS' -> sleeve: long", ["colour", "sleeve"])
    [('colour', 'navy, from the title'), ('sleeve', 'long')]
    """
    claims = []
    for name in names:
        # The name as written and in normalised spelling ("Colour" also finds "color").
        spellings = {tuple(re.split(r"[\s_\-]+", name.strip().lower())), tuple(normalize_key(name).split())}
        spellings = {words for words in spellings if any(words)}
        if not spellings:
            continue
        name_re = "|".join(r"[\s_\-]+".join(re.escape(w) for w in words) for words in spellings)
        pattern = re.compile(
            rf"(?<![\w])(?:{name_re})\**\s*{_LINK}\s*\**\s*([^\n]{{1,300}}?){_CLAUSE_END}", re.IGNORECASE
        )
        for match in pattern.finditer(think):
            value = match.group(1)
            if _ARROW.search(value):  # "the title says 'Navy' -> colour: navy": the conclusion is the claim
                value = re.sub(rf"^\s*(?:{name_re})\s*[:=]", "", _ARROW.split(value)[-1], flags=re.IGNORECASE)
            value = value.strip(" *\"'`")
            if value:
                claims.append((name, value))
    return claims


def _contains_words(haystack: str, needle: str) -> bool:
    return bool(needle) and f" {needle} " in f" {haystack} "


def _measurements(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for number, unit in _MEASURE.findall(text):
        if unit in UNIT_ALIASES.values():
            found.setdefault(unit, set()).add(number)
    return found


def grounding_violations(
    claims: list[tuple[str, str]], answer: dict[str, str], input_text: str, options: dict[str, list] | None = None
) -> int:
    """How many claims contradict the answer or are ruled out by the input text (see module docstring)."""
    answer_by_key = {normalize_key(k): v for k, v in answer.items()}
    options_by_key = {
        normalize_key(k): [normalize_value(o) for o in v] for k, v in (options or {}).items() if isinstance(v, list)
    }
    text = normalize_value(input_text, {})
    text_measures = _measurements(text)
    violations = 0
    for name, raw_value in claims:
        key, value = normalize_key(name), normalize_value(raw_value)
        contradicts_answer = False
        if key in answer_by_key:
            stated = answer_by_key[key]
            contradicts_answer = value != normalize_value(stated) and not _contains_words(
                normalize_value(raw_value, {}), normalize_value(stated, {})
            )
        ruled_out = False
        opts = options_by_key.get(key, [])
        if value in opts:
            mentioned = [o for o in opts if _contains_words(text, o)]
            ruled_out = len(mentioned) == 1 and mentioned[0] != value
        measure = _MEASURE.fullmatch(value)
        if measure and measure.group(2) in text_measures:
            ruled_out = ruled_out or measure.group(1) not in text_measures[measure.group(2)]
        violations += contradicts_answer or ruled_out
    return violations


class GroundedReasoningReward:
    """Penalty in [-1, 0] for reasoning that contradicts its own answer or the input text.

    >>> r = GroundedReasoningReward()
    >>> r(["<think>colour: red</think><answer>{\\"colour\\": \\"navy\\"}</answer>",
    ...    "<think>length: 55mm</think><answer>{\\"length\\": \\"55mm\\"}</answer>"],
    ...   title=["Navy shirt", "Lure 40mm 3.5g"])
    [-1.0, -1.0]
    """

    __name__ = "grounded_reasoning"

    def __init__(self, max_think_chars: int = 20_000):
        self.max_think_chars = int(max_think_chars)

    def score(self, completion: Any, title: Any, description: Any = None, options: Any = None) -> float | None:
        text = completion_text(completion)
        think = extract_tagged(text, "think")
        answer = parse_answer(text)
        if think is None or answer is None:
            return None
        opts = load_json_field(options) or {}
        names = list({normalize_key(n): n for n in reversed(list(answer) + list(opts))}.values())
        claims = think_claims(think[: self.max_think_chars], names)
        if not claims:
            return 0.0
        input_text = " ".join(str(t) for t in (title, description) if isinstance(t, str))
        return -grounding_violations(claims, answer, input_text, opts) / len(claims)

    def __call__(
        self,
        completions: list,
        title: list | None = None,
        description: list | None = None,
        options: list | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        titles = title if title is not None else [None] * n
        descriptions = description if description is not None else [None] * n
        opts = options if options is not None else [None] * n
        return [
            self.score(c, t, d, o) for c, t, d, o in zip(completions, titles, descriptions, opts, strict=True)
        ]
