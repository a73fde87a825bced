"""`identifier_format`: the reasoning of the reasoning embedding (`moon-rl` poolings `reasoning` / `reasoning_token`) reads
as `name: value` parts separated by `; `, each name one of the identifier fields the cold-start traces write
(`data_prep.identifier_trace`: brand, model, type), none twice.

Partial credit: the share of parts that are well formed, times 1 when no name repeats (0.5 otherwise); an empty
completion scores 0. So `brand: sony; model: cdpce375; type: cd player` scores 1.0 and a rambling sentence 0.0.
"""

from __future__ import annotations

import re
from typing import Any

from reward_fns.parsing import completion_text

__all__ = ["IdentifierFormatReward", "identifier_format_score"]

NAMES = ("brand", "model", "type")
_PART = re.compile(rf"^({'|'.join(NAMES)}): [^;:\n]+$")


def identifier_format_score(text: str) -> float:
    """
    >>> identifier_format_score("brand: sony; model: cdpce375; type: cd player")
    1.0
    >>> identifier_format_score("brand: sony; it plays cds")
    0.5
    >>> identifier_format_score("")
    0.0
    """
    parts = [p.strip() for p in text.strip().split(";")]
    parts = [p for p in parts if p]
    if not parts:
        return 0.0
    good = [p.split(":", 1)[0] for p in parts if _PART.match(p)]
    share = len(good) / len(parts)
    return share if len(set(good)) == len(good) else share * 0.5


class IdentifierFormatReward:
    """Per-completion `identifier_format_score` (see the module docstring)."""

    __name__ = "identifier_format"

    def __call__(self, completions: list, **kwargs: Any) -> list[float]:
        return [identifier_format_score(completion_text(c)) for c in completions]
