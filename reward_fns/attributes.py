"""Attribute rewards: `attribute_f1` (open attributes, micro-F1) and `attribute_choice` (closed sets).

The matching itself is the pure function `attribute_matches(pred, gold)`, which `moon-rl eval` calls for
attribute accuracy, so training reward and evaluation metric cannot drift apart.

Dataset columns used: `attributes` (JSON string or dict, name -> value) and `options` (JSON string or
dict, name -> list of allowed values; "{}" when none).

Departures: values meaning "not stated" (`n/a`, `null`, `unknown`) are dropped from both sides before
matching (AE-110K labels absent attributes `n/a`); units are canonicalised but not converted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reward_fns.errors import RewardError
from reward_fns.parsing import (
    completion_text,
    is_na,
    load_json_field,
    normalize_key,
    normalize_value,
    parse_answer,
    prepare_synonyms,
)

DEFAULT_IGNORE_KEYS = ("category",)

__all__ = ["AttributeChoice", "AttributeF1", "attribute_hits", "attribute_matches", "f1_from_counts"]


def _canonical_pairs(
    attrs: Mapping[str, Any], normalize: bool, synonyms: Mapping[str, str] | None
) -> list[tuple[str, str]]:
    pairs = []
    for key, value in attrs.items():
        if value is None or is_na(value):
            continue
        if normalize:
            pairs.append((normalize_key(key), normalize_value(value, synonyms)))
        else:
            pairs.append((str(key).strip(), str(value).strip()))
    return pairs


def attribute_hits(
    pred: Mapping[str, Any] | None,
    gold: Mapping[str, Any],
    normalize: bool = True,
    synonyms: Mapping[str, str] | None = None,
) -> dict[str, bool]:
    """For each gold attribute (original name), whether the prediction has the same value for it.

    >>> attribute_hits({"colour": "Grey", "size": "M"}, {"Colour": "gray", "Size": "L"})
    {'Colour': True, 'Size': False}
    """
    pred_pairs = set(_canonical_pairs(pred or {}, normalize, synonyms))
    hits = {}
    for key, value in gold.items():
        if value is None or is_na(value):
            continue
        (pair,) = _canonical_pairs({key: value}, normalize, synonyms)
        hits[str(key)] = pair in pred_pairs
    return hits


def attribute_matches(
    pred: Mapping[str, Any] | None,
    gold: Mapping[str, Any],
    normalize: bool = True,
    synonyms: Mapping[str, str] | None = None,
    ignore_keys: Iterable[str] = DEFAULT_IGNORE_KEYS,
) -> tuple[int, int, int]:
    """Counts `(true_positives, n_pred, n_gold)` over attribute-value pairs, for micro-F1.

    A predicted pair is a true positive when gold has the same (normalised) name with the same
    (normalised) value; each gold pair is matched at most once, so hedging with two spellings of one name
    ("color" and "colour") costs precision. `pred=None` (no parsable answer) predicts nothing. Answer
    fields in `ignore_keys` (default `category`, which has its own reward) are not predictions unless
    gold has them.

    >>> attribute_matches({"colour": "navy", "size": "XL"}, {"Colour": "Navy Blue", "Size": "M"})
    (1, 2, 2)
    """
    pred_pairs = _canonical_pairs(pred or {}, normalize, synonyms)
    gold_pairs = set(_canonical_pairs(gold, normalize, synonyms))
    key = normalize_key if normalize else (lambda k: str(k).strip())
    ignore_keys = [ignore_keys] if isinstance(ignore_keys, str) else ignore_keys
    ignored = {key(k) for k in ignore_keys} - {key(k) for k in gold}
    pred_pairs = [pair for pair in pred_pairs if pair[0] not in ignored]
    matched: set[tuple[str, str]] = set()
    for pair in pred_pairs:
        if pair in gold_pairs and pair not in matched:
            matched.add(pair)
    return len(matched), len(pred_pairs), len(gold_pairs)


def f1_from_counts(tp: int, n_pred: int, n_gold: int) -> float:
    """F1 = 2·tp / (n_pred + n_gold); 1.0 when both are empty (nothing to find, nothing claimed)."""
    if n_pred + n_gold == 0:
        return 1.0
    return 2.0 * tp / (n_pred + n_gold)


def _load_synonyms(synonyms: Mapping[str, str] | str | Path | None) -> Mapping[str, str] | None:
    if synonyms is None or isinstance(synonyms, Mapping):
        return synonyms
    path = Path(synonyms)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RewardError(f"attribute reward: cannot read synonyms file {path}: {err.strerror}") from None
    import yaml  # JSON is YAML, so one loader reads both

    table = yaml.safe_load(text)
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise RewardError(f"{path}: a synonyms file must map variant strings to canonical strings, e.g. 'grey: gray'")
    return table


class AttributeF1:
    """Micro-F1 of the attribute-value pairs in `<answer>` against the record's `attributes`.

    Parameters: `normalize` (default true: case, whitespace, punctuation, units, synonyms), `synonyms`
    (a dict or a JSON/YAML file of variant -> canonical, merged over the built-in table) and
    `ignore_keys` (answer fields that are not attributes, default `[category]`, scored by their own
    reward; they count only when the record's attributes have them).
    Scores 0.0 for a missing answer, malformed JSON, a non-object answer or a key repeated with different
    values; `None` when the record has no attributes.

    >>> f1 = AttributeF1()
    >>> f1(["<think>.</think><answer>{\\"colour\\": \\"grey\\", \\"size\\": \\"XL\\"}</answer>", "no answer"],
    ...    attributes=['{"Colour": "Gray", "Size": "M"}', '{"Colour": "Gray"}'])
    [0.5, 0.0]
    """

    __name__ = "attribute_f1"

    def __init__(
        self,
        normalize: bool = True,
        synonyms: Mapping[str, str] | str | None = None,
        ignore_keys: Iterable[str] = DEFAULT_IGNORE_KEYS,
    ):
        self.normalize = bool(normalize)
        self.synonyms = prepare_synonyms(_load_synonyms(synonyms))
        self.ignore_keys = (ignore_keys,) if isinstance(ignore_keys, str) else tuple(ignore_keys)

    def score(self, completion: Any, gold: Any) -> float | None:
        gold_attrs = load_json_field(gold)
        if not gold_attrs:
            return None
        pred = parse_answer(completion_text(completion))
        if pred is None:
            return 0.0
        return f1_from_counts(
            *attribute_matches(pred, gold_attrs, self.normalize, self.synonyms, self.ignore_keys)
        )

    def __call__(self, completions: list, attributes: list | None = None, **kwargs) -> list[float | None]:
        if attributes is None:
            return [None] * len(completions)
        return [self.score(c, a) for c, a in zip(completions, attributes, strict=True)]


class AttributeChoice:
    """Closed-set attributes (ImplicitAVE-style): did the answer pick the right option?

    For each attribute in the record's `options` that has a gold value, the answer's value must equal the
    gold option (after normalisation). The reward is the fraction right: 1 or 0 with one option set.
    `None` when the record has no options; 0.0 when there is no parsable answer.

    >>> choice = AttributeChoice()
    >>> choice(["<answer>{\\"sleeve\\": \\"Long\\"}</answer>", "<answer>{\\"sleeve\\": \\"short\\"}</answer>"],
    ...        attributes=['{"sleeve": "long"}'] * 2, options=['{"sleeve": ["long", "short"]}'] * 2)
    [1.0, 0.0]
    """

    __name__ = "attribute_choice"

    def __init__(self, normalize: bool = True):
        self.normalize = bool(normalize)

    def _norm(self, value: Any) -> str:
        return normalize_value(value) if self.normalize else str(value).strip()

    def score(self, completion: Any, gold: Any, options: Any) -> float | None:
        opts = load_json_field(options)
        gold_attrs = load_json_field(gold) or {}
        if not opts:
            return None
        key = normalize_key if self.normalize else (lambda k: str(k).strip())
        gold_by_key = {key(k): v for k, v in gold_attrs.items()}
        asked = [key(name) for name in opts if key(name) in gold_by_key]
        if not asked:
            return None
        pred = parse_answer(completion_text(completion))
        if pred is None:
            return 0.0
        pred_by_key: dict[str, list[str]] = {}
        for k, v in pred.items():
            pred_by_key.setdefault(key(k), []).append(v)
        right = 0
        for name in asked:
            chosen = pred_by_key.get(name, [])
            # Two different values for one attribute is hedging, never a right choice.
            if len({self._norm(v) for v in chosen}) == 1 and self._norm(chosen[0]) == self._norm(gold_by_key[name]):
                right += 1
        return right / len(asked)

    def __call__(
        self, completions: list, attributes: list | None = None, options: list | None = None, **kwargs
    ) -> list[float | None]:
        if options is None:
            return [None] * len(completions)
        attributes = attributes if attributes is not None else [None] * len(completions)
        return [self.score(c, a, o) for c, a, o in zip(completions, attributes, options, strict=True)]


def dumps_answer(attrs: Mapping[str, Any]) -> str:
    """The `<answer>` JSON for a dict of attributes (used to synthesise gold completions)."""
    return json.dumps(dict(attrs), ensure_ascii=False)
