"""Reading model outputs: completion text, tagged blocks, the JSON answer, and value normalisation.

Shared by every reward in this package and by `moon-rl eval` (attribute accuracy), so a completion is
parsed the same way when it is rewarded and when it is scored. Nothing here raises on bad model output:
hostile text (unbalanced tags, huge outputs, lone surrogates, nested or duplicated JSON) gives `None`
or an empty result, never an exception.

    >>> parse_answer('<think>navy, long sleeves</think><answer>{"Colour": "Navy", "size": 150}</answer>')
    {'Colour': 'Navy', 'size': '150'}
    >>> normalize_value("150 Millimetres") == normalize_value("150mm")
    True
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_SYNONYMS",
    "NA_VALUES",
    "completion_text",
    "extract_tagged",
    "is_na",
    "load_json_field",
    "normalize_key",
    "normalize_value",
    "parse_answer",
    "parse_answer_json",
    "prepare_synonyms",
]

# ---------------------------------------------------------------------------------------------- text


def completion_text(completion: Any) -> str:
    """The text of one completion, plain (`str`) or conversational (a list of messages).

    Conversational completions join the contents of their assistant messages (all messages when none has a
    role), and content given as parts (`[{"type": "text", "text": ...}]`) joins its text parts.

    >>> completion_text([{"role": "assistant", "content": "<answer>{}</answer>"}])
    '<answer>{}</answer>'
    >>> completion_text("plain")
    'plain'
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, bytes | bytearray):
        return bytes(completion).decode("utf-8", errors="replace")
    if isinstance(completion, Mapping):
        if "content" in completion:
            return completion_text(completion["content"])
        return str(completion.get("text", ""))
    if isinstance(completion, list | tuple):
        if all(isinstance(m, Mapping) and "role" in m for m in completion) and completion:
            messages = [m for m in completion if m.get("role") == "assistant"] or list(completion)
            return "\n".join(completion_text(m.get("content")) for m in messages)
        # A list of content parts, e.g. [{"type": "text", "text": "..."}] (images carry no text).
        return "".join(
            str(p.get("text", "")) if isinstance(p, Mapping) else completion_text(p) for p in completion
        )
    return str(completion)


def extract_tagged(text: str, tag: str) -> str | None:
    """The content of the last complete `<tag>...</tag>` block, or `None` when there is none.

    The *last* block is the final answer when a model repeats itself; the `format` reward is the one that
    penalises repetition. Uses `str.rfind`, not a regex, so huge outputs cost linear time.

    >>> extract_tagged("<answer>a</answer> <answer>b</answer>", "answer")
    'b'
    >>> extract_tagged("<answer>never closed", "answer") is None
    True
    """
    if not isinstance(text, str):
        text = completion_text(text)
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    end = text.rfind(close_tag)
    if end < 0:
        return None
    start = text.rfind(open_tag, 0, end)
    if start < 0:
        return None
    return text[start + len(open_tag) : end]


# ---------------------------------------------------------------------------------------------- JSON


class _DuplicateKey(ValueError):
    pass


def _pairs_no_conflict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice with different values is an ambiguous (hedging) answer; identical repeats are harmless.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out and out[key] != value:
            raise _DuplicateKey(key)
        out[key] = value
    return out


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def _scalar_to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    # Lists and objects are the wrong type for an attribute value: keep them as text so they count as a
    # (wrong) prediction instead of silently vanishing from the precision denominator.
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def parse_answer_json(body: str) -> dict[str, str] | None:
    """Parse the inside of an `<answer>` block into attribute name -> value (all values as strings).

    Tolerates code fences and text around a single JSON object. Returns `None` for anything that is not a
    JSON object, for malformed JSON, and for a key repeated with different values. `null` values are
    dropped; numbers and booleans become strings; nested lists/objects become their JSON text.

    >>> parse_answer_json('```json\\n{"a": 1, "b": null}\\n```')
    {'a': '1'}
    >>> parse_answer_json('{"a": "x", "a": "y"}') is None
    True
    """
    if not isinstance(body, str):
        return None
    text = _FENCE.sub("", body.strip())
    candidates = [text]
    first, last = text.find("{"), text.rfind("}")
    if 0 <= first < last and (first, last) != (0, len(text) - 1):
        candidates.append(text[first : last + 1])
    for candidate in candidates:
        try:
            obj = json.loads(candidate, object_pairs_hook=_pairs_no_conflict)
        except _DuplicateKey:
            return None
        except (ValueError, RecursionError, TypeError):
            continue
        if not isinstance(obj, dict):
            return None
        out: dict[str, str] = {}
        for key, value in obj.items():
            as_text = _scalar_to_str(value)
            if as_text is not None:
                out[str(key)] = as_text
        return out
    return None


def parse_answer(text: Any) -> dict[str, str] | None:
    """The JSON object in the last `<answer>` block of a completion, or `None` (see `parse_answer_json`)."""
    try:
        body = extract_tagged(completion_text(text), "answer")
        return None if body is None else parse_answer_json(body)
    except Exception:  # never raise on model output: a reward must score it 0, not crash training
        return None


def load_json_field(value: Any) -> dict | None:
    """A dataset column holding a JSON object (as a string, as in prepared datasets, or already a dict).

    >>> load_json_field('{"colour": "navy"}')
    {'colour': 'navy'}
    >>> load_json_field("not json") is None
    True
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            obj = json.loads(value)
        except (ValueError, RecursionError):
            return None
        return obj if isinstance(obj, dict) else None
    return None


# --------------------------------------------------------------------------------------- normalisation

# Unit spellings -> canonical symbol. No conversion between units (15 cm is not 150 mm): that would need
# per-attribute knowledge of which unit the catalog uses.
_UNITS = {
    "mm": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "m": ("m", "meter", "meters", "metre", "metres"),
    "km": ("km", "kilometer", "kilometers", "kilometre", "kilometres"),
    "in": ("in", "inch", "inches"),
    "ft": ("ft", "foot", "feet"),
    "mg": ("mg", "milligram", "milligrams"),
    "g": ("g", "gr", "gram", "grams", "gramme", "grammes"),
    "kg": ("kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"),
    "lb": ("lb", "lbs", "pound", "pounds"),
    "oz": ("oz", "ounce", "ounces"),
    "ml": ("ml", "milliliter", "milliliters", "millilitre", "millilitres"),
    "l": ("l", "ltr", "liter", "liters", "litre", "litres"),
    "w": ("w", "watt", "watts"),
    "v": ("v", "volt", "volts"),
    "mah": ("mah",),
    "gb": ("gb", "gigabyte", "gigabytes"),
    "tb": ("tb", "terabyte", "terabytes"),
    "mp": ("mp", "megapixel", "megapixels"),
    "hz": ("hz", "hertz"),
    "pcs": ("pc", "pcs", "piece", "pieces"),
}
UNIT_ALIASES = {alias: unit for unit, aliases in _UNITS.items() for alias in aliases}
_NUMBER_UNIT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*([a-z]+)\b")
_INCH_MARK = re.compile(r"(\d)\s*(?:\"|''|”|″)")
_KEEP_DOT = re.compile(r"(?<=\d)\.(?=\d)")

# Whole-value synonyms (keys and values in normalised form). Extend per reward with `synonyms=`.
DEFAULT_SYNONYMS: dict[str, str] = {
    "grey": "gray",
    "navy blue": "navy",
    "multi color": "multicolor",
    "multicolour": "multicolor",
    "multi colour": "multicolor",
    "multi": "multicolor",
    "womens": "women",
    "woman": "women",
    "ladies": "women",
    "female": "women",
    "mens": "men",
    "man": "men",
    "male": "men",
    "extra small": "xs",
    "x small": "xs",
    "small": "s",
    "medium": "m",
    "large": "l",
    "extra large": "xl",
    "x large": "xl",
    "stainless": "stainless steel",
    "yes": "true",
    "no": "false",
}
# Spelling variants replaced word by word (inside longer values too: "dark grey" == "dark gray").
_TOKEN_SYNONYMS = {"grey": "gray", "colour": "color", "colours": "colors", "womens": "women", "mens": "men"}

# Values that mean "not stated"; dropped from both prediction and gold before matching.
NA_VALUES = frozenset({"", "n a", "na", "null", "not applicable", "unknown"})


_APOSTROPHES = re.compile(r"['’`´]")


def _strip_punct(text: str) -> str:
    text = _APOSTROPHES.sub("", text)  # "women's" -> "womens", not "women s"
    text = _KEEP_DOT.sub("\x00", text)  # protect decimal points: "4.5g" stays one number
    chars = [" " if unicodedata.category(ch)[0] in "PSZC" and ch != "\x00" else ch for ch in text]
    return "".join(chars).replace("\x00", ".")


def _join_units(text: str) -> str:
    def repl(m: re.Match) -> str:
        number, word = m.group(1), m.group(2)
        unit = UNIT_ALIASES.get(word)
        if unit is None:
            return m.group(0)
        if "." in number:
            number = number.rstrip("0").rstrip(".")  # "4.50" == "4.5"
        return f"{number}{unit}"

    return _NUMBER_UNIT.sub(repl, text)


def _base_normalize(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _INCH_MARK.sub(r"\1 in ", text)  # 12" -> 12 in (before quotes are stripped as punctuation)
    text = " ".join(_strip_punct(text).split())
    return " ".join(_TOKEN_SYNONYMS.get(tok, tok) for tok in _join_units(text).split())


def normalize_value(value: Any, synonyms: Mapping[str, str] | None = None) -> str:
    """Canonical form of an attribute value for matching.

    Case-folds (with Unicode NFKC), turns punctuation into spaces (decimal points survive), collapses
    whitespace, writes numbers with units as one token with a canonical unit (`150 Millimetres` ->
    `150mm`, `12"` -> `12in`), fixes spelling variants word by word (grey/gray), then maps the whole
    value through `synonyms` (default `DEFAULT_SYNONYMS`; pass `{}` for none).

    >>> normalize_value("  Dark-GREY ")
    'dark gray'
    >>> normalize_value("Women's")
    'women'
    """
    table = DEFAULT_SYNONYMS if synonyms is None else synonyms
    text = _base_normalize(value)
    return table.get(text, text)


def normalize_key(key: Any) -> str:
    """Canonical form of an attribute name: `Brand_Name`, `brand-name` and `Brand Name` all match."""
    return _base_normalize(key)


def is_na(value: Any) -> bool:
    """Whether a value means "not stated" (`n/a`, `null`, `unknown`, empty)."""
    return _base_normalize(value) in NA_VALUES


def prepare_synonyms(synonyms: Mapping[str, str] | None, extend_defaults: bool = True) -> dict[str, str]:
    """Normalise a user synonym table (variant -> canonical) and merge it over the defaults."""
    table = dict(DEFAULT_SYNONYMS) if extend_defaults else {}
    for variant, canonical in (synonyms or {}).items():
        table[_base_normalize(variant)] = _base_normalize(canonical)
    return table
