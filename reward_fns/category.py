"""`category`: hierarchical credit for the category path named in the answer.

The answer's `category` value (`Clothing > Tops > Shirts`) is compared level by level with the record's
`category` column. Credit = length of the common prefix / length of the longer path, so every right
level from the root counts, a wrong top level scores 0, and naming extra levels that the gold path does
not have is not free (`Clothing > Tops > Shirts > Oxford` against `Clothing > Tops > Shirts`: 0.75).
Levels are compared after `normalize_value` (case, whitespace, punctuation).
"""

from __future__ import annotations

from typing import Any

from reward_fns.parsing import completion_text, normalize_key, normalize_value, parse_answer

__all__ = ["CategoryReward", "category_credit"]


def _levels(path: Any) -> list[str]:
    return [normalize_value(level, {}) for level in str(path).split(">") if normalize_value(level, {})]


def category_credit(pred: str, gold: str) -> float:
    """Common-prefix credit between two category paths.

    >>> category_credit("clothing > tops > t-shirts", "Clothing > Tops > Shirts")
    0.6666666666666666
    >>> category_credit("Shoes", "Clothing > Tops")
    0.0
    """
    pred_levels, gold_levels = _levels(pred), _levels(gold)
    if not pred_levels or not gold_levels:
        return 0.0
    common = 0
    for p, g in zip(pred_levels, gold_levels, strict=False):
        if p != g:
            break
        common += 1
    return common / max(len(pred_levels), len(gold_levels))


class CategoryReward:
    """Hierarchical category credit; `key` names the answer field holding the path (default `category`).

    Scores 0.0 when the answer is missing, unparsable or has no such field; `None` when the record has no
    category.

    >>> CategoryReward()(["<answer>{\\"category\\": \\"Clothing > Tops\\"}</answer>"],
    ...                  category=["Clothing > Tops > Shirts"])
    [0.6666666666666666]
    """

    __name__ = "category"

    def __init__(self, key: str = "category"):
        self.key = normalize_key(key)

    def score(self, completion: Any, gold: Any) -> float | None:
        if not isinstance(gold, str) or not _levels(gold):
            return None
        pred = parse_answer(completion_text(completion))
        if pred is None:
            return 0.0
        values = [v for k, v in pred.items() if normalize_key(k) == self.key]
        if len(values) != 1:  # absent, or given twice under two spellings of the key
            return 0.0
        return category_credit(values[0], gold)

    def __call__(self, completions: list, category: list | None = None, **kwargs: Any) -> list[float | None]:
        if category is None:
            return [None] * len(completions)
        return [self.score(c, g) for c, g in zip(completions, category, strict=True)]
