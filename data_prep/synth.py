"""`moon-rl data synth`: a synthetic, MBE-like product catalog for demos, tests and benchmarks.

    moon-rl data synth --out data/synth --products 2000 --seed 0 --image-size 64

What it makes (a catalog folder in the `data_prep.schema` layout: products.jsonl, images/, splits/, catalog.json):
- Products in the leaf categories of `data_prep.taxonomy`, each with its own attributes (colour, pattern,
  material, sleeve, shape, ...).
- Hard negatives by construction: items come in *families* that share a base attribute set, each member
  changing one attribute, and no two items share a category and full attribute set. So products can be told
  apart only by fine-grained attributes, which is what MOON3.0 trains for.
- Two views of some items (the same `group_id`): same attributes, a different render (placement, background,
  noise) and a different noisy title. Groups never straddle the train/test split (about 80/20 by group).
- Noisy titles (brand, marketing words, synonyms, random order and casing) that leave some visual attributes
  out, so only the image shows them. Non-visual attributes (material, capacity, fit, ...) are always stated,
  in the title or in the description. Some records carry closed-set `options` for an attribute or two.
- Search queries built from 2-4 attributes, so a product and its queries can be contrastive positives.

Deterministic: the same seed, size and image size give byte-identical files (no clocks, no PIL randomness;
every random draw comes from one `random.Random(seed)`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path
from typing import Any

from data_prep.errors import DataPrepError
from data_prep.schema import META_FILE, PRODUCTS_FILE, SPLITS_DIR, Product, write_catalog
from data_prep.synth_render import View, render
from data_prep.taxonomy import BRANDS, CATEGORIES, FLUFF, VISUAL_ATTRIBUTES, Category, surface_forms

IMAGES_DIR = "images"


@dataclasses.dataclass
class SynthConfig:
    products: int = 1000  # number of records (views), not of items
    seed: int = 0
    image_size: int = 64  # tiny VL models spend few image tokens on 64 px
    two_view_fraction: float = 0.35  # share of items photographed twice (same group_id)
    family_size: tuple[int, int] = (2, 4)  # items per family of near-duplicates (min, max)
    omit_visual: float = 0.35  # chance that a title leaves out a given visual attribute
    description_fraction: float = 0.4
    options_fraction: float = 0.3
    test_fraction: float = 0.2


@dataclasses.dataclass
class _Item:
    """One physical product: its category and attributes. Views of it become records sharing a group_id."""

    group_id: str
    category: Category
    attributes: dict[str, str]


def _families(cfg: SynthConfig, rng: random.Random) -> list[_Item]:
    """Enough items for `cfg.products` records, in families of near-duplicates (one attribute apart)."""
    items: list[_Item] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    # Each item yields 1 or 2 records; plan on the mean and trim later.
    target = int(cfg.products / (1 + cfg.two_view_fraction)) + 8
    while len(items) < target:
        category = rng.choice(CATEGORIES)
        base = {name: rng.choice(values) for name, values in category.attributes.items()}
        members = [base]
        for _ in range(rng.randint(*cfg.family_size) - 1):
            name = rng.choice(list(category.attributes))
            sibling = dict(base)
            sibling[name] = rng.choice([v for v in category.attributes[name] if v != base[name]])
            members.append(sibling)
        for attributes in members:
            key = (category.path, tuple(attributes.values()))
            if key in seen:  # distinct items must differ in at least one attribute
                continue
            seen.add(key)
            items.append(_Item(f"g{len(items):06d}", category, attributes))
    return items


def _case(word: str, rng: random.Random) -> str:
    roll = rng.random()
    return word.upper() if roll < 0.08 else word.lower() if roll < 0.2 else word.title()


def _title(item: _Item, stated: list[str], rng: random.Random) -> str:
    """A noisy title that states exactly the attributes in `stated` (others are left implicit)."""
    phrases = [_case(rng.choice(surface_forms(item.attributes[name])), rng) for name in stated]
    rng.shuffle(phrases)
    # Some attributes trail the noun ("Mug with Round Handle"), as in real listings.
    cut = rng.randint(max(0, len(phrases) - 2), len(phrases))
    words = [rng.choice(BRANDS)] if rng.random() < 0.7 else []
    words += rng.sample(FLUFF, rng.randint(0, 2))
    words += phrases[:cut] + [rng.choice(item.category.nouns)]
    if phrases[cut:]:
        words += [rng.choice(["with", "-", ","])] + phrases[cut:]
    if rng.random() < 0.4:
        words.append(rng.choice(FLUFF))
    return " ".join(words).replace(" ,", ",")


def _record(item: _Item, pid: str, cfg: SynthConfig, rng: random.Random, avoid_title: str | None) -> Product:
    names = list(item.attributes)
    visual = [n for n in names if n in VISUAL_ATTRIBUTES]
    textual = [n for n in names if n not in VISUAL_ATTRIBUTES]
    described = rng.random() < cfg.description_fraction
    in_description = [n for n in textual if described and rng.random() < 0.5]
    for _ in range(10):  # the second view of an item must not repeat the first view's title
        stated = [n for n in visual if rng.random() >= cfg.omit_visual]
        stated += [n for n in textual if n not in in_description]
        title = _title(item, stated, rng)
        if title != avoid_title:
            break
    description = None
    if described:
        sentences = [f"{name.capitalize()}: {item.attributes[name]}." for name in in_description]
        sentences.append(rng.choice(["Perfect for everyday use.", "Easy care.", "A great gift.", "Ships fast."]))
        description = " ".join(sentences)
    options: dict[str, list[str]] = {}
    if rng.random() < cfg.options_fraction:
        for name in rng.sample(names, rng.randint(1, 2)):
            options[name] = list(item.category.attributes[name])
    queries = []
    for _ in range(rng.randint(1, 2)):
        asked = rng.sample(names, rng.randint(2, min(4, len(names))))
        words = [rng.choice(surface_forms(item.attributes[n])) for n in asked]
        queries.append(" ".join(words + [rng.choice(item.category.nouns).lower()]))
    return Product(
        id=pid,
        title=title,
        category=item.category.path,
        description=description,
        images=[f"{IMAGES_DIR}/{pid}.png"],
        attributes=dict(item.attributes),
        queries=queries,
        group_id=item.group_id,
        options=options,
    )


SYNTH_SOURCE = "moon-rl data synth"  # catalog.json's "source": the mark of a folder --force may replace


def _meta_source(out: Path) -> object:
    try:
        return json.loads((out / META_FILE).read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise DataPrepError(
                f"{out}: folder is not empty; choose a new --out folder or pass --force to replace the catalog in it"
            )
        if _meta_source(out) != SYNTH_SOURCE:  # --force replaces only what `data synth` wrote, never a user's images/
            raise DataPrepError(
                f"{out}: --force replaces only a catalog `moon-rl data synth` wrote (its {META_FILE} says so), and this "
                "folder is not one; choose a new --out folder"
            )
        for sub in (IMAGES_DIR, SPLITS_DIR):  # only what a catalog owns; other files are left alone
            shutil.rmtree(out / sub, ignore_errors=True)
        (out / PRODUCTS_FILE).unlink(missing_ok=True)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)


def synth_catalog(
    out: str | Path, cfg: SynthConfig | None = None, *, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Generate a synthetic catalog into `out`; returns a summary (counts, categories, split sizes)."""
    from tqdm.auto import tqdm

    cfg = cfg or SynthConfig()
    if cfg.products < 2:
        raise DataPrepError(f"--products {cfg.products}: need at least 2 products (one per split)")
    if not 8 <= cfg.image_size <= 1024:
        raise DataPrepError(f"--image-size {cfg.image_size}: choose a size between 8 and 1024 pixels")
    out = Path(out)
    _prepare_out(out, force)
    rng = random.Random(cfg.seed)
    items = _families(cfg, rng)
    rng.shuffle(items)  # spread families over the file so splits and batches mix categories

    products: list[Product] = []
    bar = tqdm(total=cfg.products, desc="synth products", unit="product", disable=not progress)
    for item in items:
        n_views = 2 if rng.random() < cfg.two_view_fraction else 1
        previous_title = None
        for _ in range(min(n_views, cfg.products - len(products))):
            pid = f"p{len(products):06d}"
            product = _record(item, pid, cfg, rng, previous_title)
            previous_title = product.title
            image = render(item.category.kind, item.attributes, cfg.image_size, View.sample(rng))
            image.save(out / product.images[0], format="PNG", compress_level=1)  # level 1: 2x faster, ~same size here
            products.append(product)
            bar.update(1)
        if len(products) >= cfg.products:
            break
    bar.close()

    # Split by group so that no item has a view on each side; keep file order inside each split.
    groups = sorted({p.group_id for p in products})
    rng.shuffle(groups)
    n_test = min(max(1, round(len(groups) * cfg.test_fraction)), max(1, len(groups) - 1))
    test_groups = set(groups[:n_test])
    splits = {
        "train": [p.id for p in products if p.group_id not in test_groups],
        "test": [p.id for p in products if p.group_id in test_groups],
    }
    used = {p.category for p in products}
    meta = {
        "name": "synthetic-mbe",
        "source": SYNTH_SOURCE,
        "config": dataclasses.asdict(cfg),
        "attributes": sorted({name for c in CATEGORIES for name in c.attributes}),
        "visual_attributes": sorted(VISUAL_ATTRIBUTES),
        "categories": {c.path: {n: list(v) for n, v in c.attributes.items()} for c in CATEGORIES if c.path in used},
    }
    write_catalog(out, products, splits, meta)
    return {
        "out": str(out),
        "products": len(products),
        "groups": len(groups),
        "categories": len(used),
        "train": len(splits["train"]),
        "test": len(splits["test"]),
    }
