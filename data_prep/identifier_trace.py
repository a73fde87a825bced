"""Cold-start reasoning for the reasoning embedding, written from a record's own fields: what tells this offer apart
from its neighbours in a catalog, the brand, the model number(s) in one canonical spelling and the product type.

    >>> identifier_trace("sony 5 disc cd player cdpce375")
    'brand: sony; model: cdpce375; type: disc cd player'
    >>> identifier_trace("sony cdp-ce375 5-disc changer", {"brand": "Sony", "modelno": "CDP-CE375"})
    'brand: sony; model: cdpce375; type: changer'

Matching catalogs rarely carry attributes (abt-buy has a name, a description and a price), so the fields come from
the title: the brand is the `brand` column when there is one, else the title's first word; a model number is a
token that mixes letters and digits (or a long digit string such as `010-10823-01`), not a measure (`5.8ghz`,
`46'`, `4-port`); the type is the title's last plain words. Model numbers are written lower case without `-`, `/`
or `.`, because two shops spell one part `kx-fa83` and `kxfa83`: a vector read after that canonical spelling sees
the same tokens for both (what TF-IDF over character n-grams gets for free, and a sub-word tokenizer does not).
"""

from __future__ import annotations

import json
import re
from typing import Any

BRAND_COLUMNS = ("brand", "brand name", "manufacturer")
MODEL_COLUMNS = ("modelno", "model", "model number")
MAX_MODELS = 2  # model numbers kept (a part number and a retailer's SKU, say)
TYPE_WORDS = 3  # plain words of the title kept as the product type
_FILLER = {"a", "an", "and", "by", "for", "in", "of", "on", "the", "to", "w", "with"}

# A measure or a count, not a part: "5.8ghz", "46", "4-port", "2.1-channel", "10ft", "1080p", "3rd".
_MEASURE = re.compile(
    r"^\d+([.,/]\d+)*-?(ghz|mhz|hz|gb|mb|tb|kb|mp|mm|cm|ft|in|inch|oz|lb|lbs|w|watt|watts|v|mah|x|k|p|i|th|st|nd|rd"
    r"|port|channel|disc|speed|piece|pack|pc|way|band|line|cup|qt|cu|ft\.|gal|hr|min|ms|bit|mbps|ppm|dpi|rpm)?$"
)
_CANON = re.compile(r"[-/._]")


def canonical_code(token: str) -> str:
    """A model number in one spelling: lower case, no `-`, `/`, `.` or `_` (`KX-FA83` -> `kxfa83`)."""
    return _CANON.sub("", token.lower())


def is_code(token: str) -> bool:
    """Does `token` read as a model / part number (letters and digits, or a long digit string), not a measure?"""
    bare = token.strip("()[],;:'\"").lower()
    code = canonical_code(bare)
    if len(code) < 3 or _MEASURE.match(bare):
        return False
    has_digit, has_alpha = any(c.isdigit() for c in code), any(c.isalpha() for c in code)
    if has_digit and has_alpha:
        return code.isalnum()
    return has_digit and "." not in bare and len(code) >= 5  # 010-10823-01, 970118-0403; not 802.11


def _attributes(attributes: dict[str, Any] | str | None) -> dict[str, str]:
    if isinstance(attributes, str):  # the prepared datasets keep attributes as a JSON string
        try:
            attributes = json.loads(attributes) if attributes.strip() else {}
        except json.JSONDecodeError:
            attributes = {}
    return {str(k).lower(): str(v).strip() for k, v in (attributes or {}).items() if v is not None and str(v).strip()}


def identifier_trace(title: str, attributes: dict[str, Any] | str | None = None) -> str:
    """`brand: ...; model: ...; type: ...` for one record (parts it cannot tell are left out; see the module doc)."""
    attrs = _attributes(attributes)
    words = [w.strip("()[],;:'\"") for w in (title or "").lower().split()]
    words = [w for w in words if w]
    brand = next((attrs[c].lower() for c in BRAND_COLUMNS if c in attrs), None)
    if brand is None and words and any(c.isalpha() for c in words[0]) and not is_code(words[0]):
        brand = words[0]
    codes = [canonical_code(attrs[c]) for c in MODEL_COLUMNS if c in attrs]
    codes += [canonical_code(w) for w in words if is_code(w)]
    codes = list(dict.fromkeys(c for c in codes if c))[:MAX_MODELS]
    brand_words = set(brand.split()) if brand else set()
    plain = [w for w in words if w.isalpha() and w not in brand_words and w not in _FILLER]
    parts = []
    if brand:
        parts.append(f"brand: {brand}")
    if codes:
        parts.append(f"model: {', '.join(codes)}")
    if plain:
        parts.append(f"type: {' '.join(plain[-TYPE_WORDS:])}")
    return "; ".join(parts)
