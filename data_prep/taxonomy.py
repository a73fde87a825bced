"""The synthetic catalog's taxonomy: leaf categories, their attributes and value lists, and how values are
named in text and drawn in images.

Used by `data_prep.synth` (to generate products) and by `data_prep.formats` (to find where a title states a
value and to phrase what an image shows). Attribute values are short phrases as MBE-style catalogs write them
("long sleeve", "v-neck"), so a title that states a value usually contains it verbatim; `SYNONYMS` lists the
other spellings titles use ("polka dot" for "dotted"), which makes titles noisier without losing the grounding.

Attributes listed in `VISUAL_ATTRIBUTES` are drawn in the product image, so a title may leave them out and only
the image tells them apart. The rest (material, capacity, fit, ...) are never shown, so the generator always
states them in the title or the description.
"""

from __future__ import annotations

import dataclasses

# name -> RGB. Close pairs (navy/blue, burgundy/red, beige/white, olive/green) make colour a fine-grained attribute.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "navy": (20, 30, 90),
    "blue": (40, 100, 220),
    "red": (215, 30, 35),
    "burgundy": (120, 20, 45),
    "green": (40, 160, 60),
    "olive": (110, 115, 40),
    "yellow": (240, 210, 40),
    "pink": (240, 140, 180),
    "beige": (225, 205, 165),
    "brown": (120, 75, 40),
    "orange": (245, 130, 30),
    "purple": (120, 50, 160),
}

PATTERNS = ["plain", "striped", "dotted", "checked"]

# Alternative spellings that titles and queries may use for a value (the canonical value is always allowed too).
SYNONYMS: dict[str, list[str]] = {
    "grey": ["gray"],
    "dotted": ["polka dot"],
    "checked": ["plaid", "check"],
    "plain": ["solid"],
    "crew neck": ["round neck"],
    "stainless steel": ["steel"],
}

# Sole colours are named apart from COLOURS so that "white" in a title never means the sole.
SOLE_COLOURS = {"gum sole": (176, 120, 64), "cream sole": (238, 228, 196), "charcoal sole": (55, 55, 60)}

# Attributes that the renderer draws; everything else must be stated in text.
VISUAL_ATTRIBUTES = frozenset(
    {"colour", "color", "pattern", "sleeve", "neckline", "length", "shape", "handle", "strap", "height", "sole", "rim"}
)


@dataclasses.dataclass(frozen=True)
class Category:
    path: str  # "Clothing > Tops > T-Shirts"
    kind: str  # which silhouette `synth_render` draws
    nouns: tuple[str, ...]  # what titles call the product
    attributes: dict[str, tuple[str, ...]]  # attribute name -> allowed values

    @property
    def leaf(self) -> str:
        return self.path.rsplit(">", 1)[-1].strip()


def _colours(*names: str) -> tuple[str, ...]:
    return tuple(names) if names else tuple(COLOURS)


CATEGORIES: tuple[Category, ...] = (
    Category(
        "Clothing > Tops > T-Shirts",
        "tshirt",
        ("T-Shirt", "Tee", "Top"),
        {
            "colour": _colours(),
            "pattern": tuple(PATTERNS),
            "sleeve": ("short sleeve", "long sleeve", "sleeveless"),
            "neckline": ("crew neck", "v-neck"),
            "material": ("cotton", "polyester", "linen", "modal"),
        },
    ),
    Category(
        "Clothing > Tops > Shirts",
        "shirt",
        ("Shirt", "Button-Up Shirt", "Blouse"),
        {
            "colour": _colours(),
            "pattern": ("plain", "striped", "checked"),
            "sleeve": ("short sleeve", "long sleeve", "three-quarter sleeve"),
            "fit": ("slim fit", "regular fit", "oversized"),
            "material": ("cotton", "linen", "denim", "silk"),
        },
    ),
    Category(
        "Clothing > Dresses",
        "dress",
        ("Dress", "Sundress", "Frock"),
        {
            "colour": _colours(),
            "pattern": tuple(PATTERNS),
            "sleeve": ("sleeveless", "short sleeve", "long sleeve"),
            "length": ("mini", "midi", "maxi"),
            "material": ("cotton", "chiffon", "satin", "linen"),
        },
    ),
    Category(
        "Home > Kitchen > Mugs",
        "mug",
        ("Mug", "Coffee Mug", "Cup"),
        {
            "colour": _colours(),
            "pattern": tuple(PATTERNS),
            "shape": ("straight", "tapered", "barrel"),
            "handle": ("round handle", "square handle"),
            "capacity": ("250 ml", "350 ml", "450 ml"),
            "material": ("ceramic", "porcelain", "stoneware"),
        },
    ),
    Category(
        "Home > Kitchen > Plates",
        "plate",
        ("Plate", "Dinner Plate", "Dish"),
        {
            "colour": _colours(),
            "pattern": ("plain", "dotted", "striped"),
            "shape": ("round", "square", "oval"),
            "rim": ("flat rim", "raised rim"),
            "diameter": ("20 cm", "24 cm", "27 cm"),
            "material": ("porcelain", "stoneware", "melamine"),
        },
    ),
    Category(
        "Home > Decor > Cushion Covers",
        "cushion",
        ("Cushion Cover", "Pillow Case", "Throw Pillow Cover"),
        {
            "colour": _colours(),
            "pattern": tuple(PATTERNS),
            "shape": ("square", "round", "rectangular"),
            "material": ("velvet", "linen", "cotton", "faux fur"),
            "closure": ("zip", "envelope"),
        },
    ),
    Category(
        "Accessories > Bags > Tote Bags",
        "tote",
        ("Tote Bag", "Shopper Bag", "Tote"),
        {
            "colour": _colours(),
            "pattern": ("plain", "striped", "checked"),
            "strap": ("short handles", "long straps"),
            "material": ("canvas", "leather", "nylon", "jute"),
            "closure": ("zip", "magnetic snap", "open top"),
        },
    ),
    Category(
        "Footwear > Sneakers",
        "sneaker",
        ("Sneakers", "Trainers", "Running Shoes"),
        {
            "colour": _colours(),
            "height": ("low-top", "high-top"),
            "sole": ("gum sole", "cream sole", "charcoal sole"),
            "material": ("leather", "canvas", "mesh", "suede"),
            "closure": ("laces", "velcro", "slip-on"),
        },
    ),
)

CATEGORY_BY_PATH = {c.path: c for c in CATEGORIES}

# Words that make titles noisy without naming any attribute value.
BRANDS = ("Aurelio", "Brightwell", "Cobalt&Co", "Dunmore", "Elkhorn", "Fairlane", "Greystone", "Halden", "Ivory Lane")
FLUFF = (
    "New", "2024", "Hot Sale", "Fashion", "Premium", "Classic", "Casual", "Trendy", "Free Shipping",
    "Best Seller", "Gift", "Unisex", "Everyday", "Original", "Quality", "Limited Edition",
)  # fmt: skip


def surface_forms(value: str) -> list[str]:
    """Every spelling of `value` that counts as stating it in a title or query (canonical first)."""
    return [value, *SYNONYMS.get(value, [])]
