"""The built-in product vocabulary the tiny tokenizers are trained on.

`product_corpus()` yields a fixed, seeded list of short texts in the shapes moon-rl feeds a model:
product titles, category paths, attribute JSON objects, `<think>`/`<answer>` traces and the
instruction text. The BPE trainer only sees word frequencies, so the texts do not have to be true,
only to contain the words (and the word pairs) that product data uses, often enough to be merged.

The word lists are generic retail vocabulary; the attribute and category names cover the ones used
by the public AE-110K / OA-Mine datasets so their titles tokenize into whole words too. A user adds
their own catalog text with `make_tiny_model(..., extra_corpus=...)` / `--corpus FILE`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

COLOURS = (
    "black white grey gray navy blue red green yellow orange pink purple brown beige khaki cream ivory "
    "gold silver teal turquoise maroon burgundy olive mint coral lavender charcoal tan camel denim "
    "multicolor transparent clear rose wine sky"
).split()
PATTERNS = (
    "solid striped plaid checked floral polka dot paisley camouflage leopard geometric abstract "
    "letter print graphic animal tie-dye houndstooth argyle gradient cartoon"
).split()
MATERIALS = (
    "cotton polyester linen silk wool cashmere denim leather suede nylon spandex viscose rayon "
    "acrylic fleece velvet satin chiffon lace canvas rubber plastic metal steel aluminium aluminum "
    "titanium wood bamboo glass ceramic carbon fiber fibre resin mahogany maple rosewood spruce "
    "alloy silicone foam mesh elastane lycra"
).split()
SLEEVES = "sleeveless short long three-quarter half cap puff raglan batwing".split()
NECKS = "crew v-neck round scoop turtleneck mock polo collar hooded boat halter square cowl".split()
FITS = "slim regular loose relaxed oversized skinny straight tailored fitted wide".split()
SHAPES = "round square rectangle oval cat-eye aviator wayfarer rimless butterfly heart flat".split()
SIZES = "XXS XS S M L XL XXL XXXL 2XL 3XL 4XL one size small medium large mini plus".split()
GENDERS = "men women unisex boys girls kids baby adult".split()
SEASONS = "summer winter spring autumn fall all-season".split()
STYLES = "casual formal sporty vintage classic modern streetwear business elegant basic".split()
PRODUCT_WORDS = (
    "shirt t-shirt blouse top tank dress skirt jeans trousers pants shorts jacket coat hoodie "
    "sweater cardigan vest suit swimsuit bikini swimwear sunglasses glasses eyewear guitar strings "
    "lure rod reel hook stove helmet cap hat baseball beanie scarf gloves socks shoes sneakers boots "
    "sandals bag backpack wallet watch belt coffee tea vitamin mask toothbrush cereal sunscreen "
    "detergent conditioner shampoo lotion bottle mug phone case charger cable headphones"
).split()
ADJECTIVES = (
    "new fashion women's men's high quality soft breathable lightweight waterproof durable portable "
    "comfortable stretch quick dry anti uv polarized organic natural fresh premium professional "
    "outdoor indoor travel electric acoustic ultralight foldable adjustable reusable"
).split()
BRANDS = "Acme Nordwind Solara Kestrel Veloce Brightline Oakridge Lumo Tidewell Zephyr".split()
CATEGORIES = (
    "Clothing > Tops > Shirts",
    "Clothing > Tops > T-Shirts",
    "Clothing > Tops > Blouses",
    "Clothing > Tops > Sweaters",
    "Clothing > Bottoms > Jeans",
    "Clothing > Bottoms > Shorts",
    "Clothing > Bottoms > Skirts",
    "Clothing > Dresses",
    "Clothing > Outerwear > Jackets",
    "Clothing > Swimwear",
    "Accessories > Eyewear > Sunglasses",
    "Accessories > Hats > Baseball Caps",
    "Accessories > Bags > Backpacks",
    "Shoes > Sneakers",
    "Shoes > Boots",
    "Sports > Fishing > Lure",
    "Sports > Fishing > Fishing Rod",
    "Sports > Cycling > Helmet",
    "Outdoor > Camping > Stove",
    "Music > Instruments > Guitar",
    "Grocery > Beverages > Coffee",
    "Grocery > Beverages > Tea",
    "Grocery > Breakfast Cereal",
    "Health > Vitamin",
    "Health > Safety Mask",
    "Beauty > Sunscreen",
    "Beauty > Hair > Conditioner",
    "Personal Care > Toothbrush",
    "Household > Laundry Detergent",
)
ATTRIBUTE_NAMES = (
    "colour color pattern material sleeve neck neckline fit shape size gender style season brand "
    "length weight width height volume capacity"
).split() + [
    "Brand Name", "Model Number", "Fabric Type", "Sport Type", "Sleeve Length", "Lenses Optical Attribute",
    "Frame Material", "Frame Color", "Lens Width", "Body Material", "Fingerboard Material", "Net content",
    "Item form", "Pack size", "Flavor", "Scent", "Specialty", "Supplement type", "Protection level",
    "Roast type", "Skin type", "Hair type", "Closure type", "Age range", "Power source",
]
UNITS = ("mm", "cm", "m", "g", "kg", "ml", "l", "oz", "lb", "in", "pcs", "pack", "w", "v", "mah")
INSTRUCTIONS = (
    "Extract the product attributes from the title and the image.",
    "Think attribute by attribute inside <think> </think>, then give a JSON object of attribute name "
    "to value inside <answer> </answer>.",
    "Describe this product: category, colour, pattern, material and fit.",
    "Which product matches the query? Answer with the attributes.",
    "Product title:",
    "Category:",
    "Attributes to extract:",
    "Allowed values:",
    "Answer with n/a when the attribute is not given.",
)


def _attribute_values() -> dict[str, tuple[str, ...]]:
    return {
        "colour": COLOURS,
        "pattern": PATTERNS,
        "material": MATERIALS,
        "sleeve": SLEEVES,
        "neck": NECKS,
        "fit": FITS,
        "shape": SHAPES,
        "size": SIZES,
        "gender": GENDERS,
        "season": SEASONS,
        "style": STYLES,
    }


def _measure(rng: random.Random) -> str:
    number = rng.choice((rng.randint(1, 9), rng.randint(10, 99), rng.randint(100, 999), rng.randint(1000, 5000)))
    return f"{number}{rng.choice(UNITS)}"


def product_corpus(n_samples: int = 1000, seed: int = 0) -> Iterator[str]:
    """Yield the built-in training texts: every word list once, then `n_samples` seeded synthetic records.

    The seed is fixed by the caller (not the model seed) so every tiny model shares one tokenizer.
    """
    values = _attribute_values()
    word_lists = [COLOURS, PATTERNS, MATERIALS, SLEEVES, NECKS, FITS, SHAPES, SIZES, GENDERS, SEASONS, STYLES,
                  PRODUCT_WORDS, ADJECTIVES, BRANDS, ATTRIBUTE_NAMES]
    for words in word_lists:
        yield " ".join(words)
        yield " ".join(w.capitalize() for w in words)
    yield from CATEGORIES
    yield from INSTRUCTIONS
    yield "0 1 2 3 4 5 6 7 8 9 10 100 1000 n/a yes no true false null"

    rng = random.Random(seed)
    for _ in range(n_samples):
        names = rng.sample(sorted(values), k=rng.randint(2, 5))
        attrs = {name: rng.choice(values[name]) for name in names}
        words = [rng.choice(BRANDS)] + list(attrs.values()) + [rng.choice(ADJECTIVES), rng.choice(PRODUCT_WORDS)]
        # Free-form attribute names (as in AE-110K / OA-Mine) with brand, measure or "n/a" values.
        for name in rng.sample(ATTRIBUTE_NAMES, k=2):
            attrs[name] = rng.choice((rng.choice(BRANDS), _measure(rng), "n/a"))
        if rng.random() < 0.5:
            words.append(_measure(rng))
        title = " ".join(w.capitalize() if rng.random() < 0.5 else w for w in words)
        think = " ".join(f"{name}: the title says {value}." for name, value in attrs.items())
        answer = json.dumps(attrs)
        yield title
        yield (
            f"{rng.choice(INSTRUCTIONS)} Product title: {title} Category: {rng.choice(CATEGORIES)} "
            f"Attributes to extract: {', '.join(attrs)}"
        )
        yield f"<think> {think} </think><answer>{answer}</answer>"
        if rng.random() < 0.3:
            yield json.dumps({name: list(rng.sample(values[name], k=min(3, len(values[name])))) for name in names})
