"""`format`: the completion is `<think>...</think>` then `<answer>...</answer>`, and nothing after.

Partial credit, 0.25 for each of:
  1. exactly one `<think>` and one `</think>`, in that order, with non-blank reasoning between;
  2. exactly one `<answer>` and one `</answer>`, in that order, with a non-blank answer between;
  3. (needs 1 and 2) nothing but whitespace before `<think>` and between `</think>` and `<answer>`;
  4. (needs 2) nothing but whitespace after `</answer>`.
So a well-formed completion scores 1.0, one that rambles after its answer 0.75, one without tags 0.0.

Departure from TRL's `think_format_reward` (which only checks the think block, 1 or 0): this one also
checks the answer block, and gives graded credit so an SFT-cold-started model is not all-or-nothing.
With `prefilled_think=true` a completion that does not start with `<think>` is read as if it did, for
chat templates (Qwen3 thinking mode) that put `<think>` in the prompt.
"""

from __future__ import annotations

from typing import Any

from reward_fns.parsing import completion_text

__all__ = ["FormatReward", "format_score"]

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"


def _one_block(text: str, open_tag: str, close_tag: str) -> tuple[int, int] | None:
    """(start of open tag, start of close tag) when the block occurs exactly once with content."""
    if text.count(open_tag) != 1 or text.count(close_tag) != 1:
        return None
    start, end = text.find(open_tag), text.find(close_tag)
    if end < start or not text[start + len(open_tag) : end].strip():
        return None
    return start, end


def format_score(text: str, prefilled_think: bool = False) -> float:
    """The format score of one completion text (see the module docstring for the rubric).

    >>> format_score("<think>red in title</think>\\n<answer>{\\"colour\\": \\"red\\"}</answer>")
    1.0
    >>> format_score("<think>red</think><answer>{}</answer> and more")
    0.75
    >>> format_score("<think>unclosed <answer>{}</answer>")
    0.5
    """
    if prefilled_think and not text.lstrip().startswith(_THINK_OPEN):
        text = _THINK_OPEN + text
    think = _one_block(text, _THINK_OPEN, _THINK_CLOSE)
    answer = _one_block(text, _ANSWER_OPEN, _ANSWER_CLOSE)
    score = 0.25 * (think is not None) + 0.25 * (answer is not None)
    if think is not None and answer is not None:
        between = text[think[1] + len(_THINK_CLOSE) : answer[0]]
        if think[1] < answer[0] and not text[: think[0]].strip() and not between.strip():
            score += 0.25
    if answer is not None and not text[answer[1] + len(_ANSWER_CLOSE) :].strip():
        score += 0.25
    return score


class FormatReward:
    """Reward for the `<think>` / `<answer>` output format, with partial credit (0, 0.25, ..., 1).

    >>> FormatReward()([[{"role": "assistant", "content": "<think>t</think><answer>{}</answer>"}], "plain"])
    [1.0, 0.0]
    """

    __name__ = "format"

    def __init__(self, prefilled_think: bool = False):
        self.prefilled_think = bool(prefilled_think)

    def __call__(self, completions: list, **kwargs: Any) -> list[float]:
        return [format_score(completion_text(c), self.prefilled_think) for c in completions]
