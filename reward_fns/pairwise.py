"""`pairwise_choice`: A-vs-B selection tasks (pick the better product creative).

The answer names the chosen candidate: `<answer>B</answer>`, `<answer>Option B</answer>` or a JSON object
with one value (`{"winner": "B"}`, `{"choice": "B"}`). It is compared, case- and punctuation-blind, with
the record's `winner` column. Reward 1.0 for the labelled winner, 0.0 for anything else (including a
hedge such as "A or B", or no answer); `None` when the record has no `winner`.
"""

from __future__ import annotations

import re
from typing import Any

from reward_fns.parsing import completion_text, extract_tagged, normalize_value, parse_answer_json

__all__ = ["PairwiseChoiceReward", "parse_choice"]

_PREFIX = re.compile(r"^(?:option|candidate|creative|image|answer|choice)\s+")


def parse_choice(text: str) -> str | None:
    """The normalised label chosen in the `<answer>` block, or `None`.

    >>> parse_choice("<think>B is sharper</think><answer> Option B. </answer>")
    'b'
    >>> parse_choice('<answer>{"winner": "a"}</answer>')
    'a'
    """
    body = extract_tagged(completion_text(text), "answer")
    if body is None:
        return None
    if body.strip().startswith("{") or body.strip().startswith("```"):
        obj = parse_answer_json(body)
        if obj is None or len(obj) != 1:
            return None
        body = next(iter(obj.values()))
    label = _PREFIX.sub("", normalize_value(body, {}))
    return label or None


class PairwiseChoiceReward:
    """1.0 when the answer picks the record's `winner`, else 0.0; `None` without a label.

    >>> PairwiseChoiceReward()(["<answer>A</answer>", "<answer>A or B</answer>"], winner=["A", "A"])
    [1.0, 0.0]
    """

    __name__ = "pairwise_choice"

    def __call__(self, completions: list, winner: list | None = None, **kwargs: Any) -> list[float | None]:
        if winner is None:
            return [None] * len(completions)
        out: list[float | None] = []
        for completion, label in zip(completions, winner, strict=True):
            gold = normalize_value(label, {}) if label is not None else ""
            gold = _PREFIX.sub("", gold)
            if not gold:
                out.append(None)
                continue
            out.append(1.0 if parse_choice(completion) == gold else 0.0)
        return out
