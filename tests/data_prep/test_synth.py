"""`data_prep.synth`: a deterministic, valid, fine-grained synthetic catalog."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from data_prep.errors import DataPrepError
from data_prep.formats import find_mention
from data_prep.schema import load_catalog, read_split_ids
from data_prep.synth import SynthConfig, synth_catalog
from data_prep.synth_render import View, render
from data_prep.taxonomy import CATEGORY_BY_PATH, COLOURS, VISUAL_ATTRIBUTES

N = 40


def _make(path: Path, seed: int = 0, products: int = N, **kw) -> Path:
    synth_catalog(path, SynthConfig(products=products, seed=seed, **kw), progress=False)
    return path


def _files(catalog: Path) -> dict[str, bytes]:
    return {str(p.relative_to(catalog)): p.read_bytes() for p in sorted(catalog.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("synth") / "cat")


@pytest.fixture(scope="module")
def products(catalog):
    return load_catalog(catalog)


def _groups(products):
    groups = defaultdict(list)
    for p in products:
        groups[p.group_id].append(p)
    return groups


def test_same_seed_gives_byte_identical_files(tmp_path, catalog):
    again = _files(_make(tmp_path / "again"))
    first = _files(catalog)
    assert again == first
    assert sum(name.startswith("images/") for name in first) == N


def test_different_seed_gives_different_catalog(tmp_path, catalog):
    other = _files(_make(tmp_path / "other", seed=1))
    first = _files(catalog)
    assert other["products.jsonl"] != first["products.jsonl"]
    assert sum(other[name] != first.get(name) for name in other if name.startswith("images/")) > N // 2


def test_records_validate_and_images_match_size(catalog, products):
    assert len(products) == N
    meta = json.loads((catalog / "catalog.json").read_text())
    for p in products:
        assert p.category in CATEGORY_BY_PATH and p.category in meta["categories"]
        assert set(p.attributes) == set(CATEGORY_BY_PATH[p.category].attributes)
        (image,) = p.images
        with Image.open(catalog / image) as img:
            assert img.size == (64, 64) and img.mode == "RGB"
    assert any(p.options for p in products)
    assert any(p.description for p in products)


def test_views_of_one_item_share_attributes_but_not_title_or_image(catalog, products):
    multi = [views for views in _groups(products).values() if len(views) > 1]
    assert multi, "expected some items with two views"
    for views in multi:
        assert len({json.dumps(v.attributes, sort_keys=True) for v in views}) == 1
        assert len({v.category for v in views}) == 1
        assert len({v.title for v in views}) == len(views)
        assert len({(catalog / v.images[0]).read_bytes() for v in views}) == len(views)


def test_titles_leave_visual_attributes_implicit_but_state_the_rest(products):
    omitted = 0
    for p in products:
        for name, value in p.attributes.items():
            stated = find_mention(p.title, value) or find_mention(p.description, value)
            if name in VISUAL_ATTRIBUTES:
                omitted += not stated
            else:  # not drawn, so it must be in the text or the trace could not ground it
                assert stated, f"{p.id}: non-visual {name}={value!r} stated nowhere: {p.title!r} / {p.description!r}"
    assert omitted >= 5


def test_items_differ_only_in_fine_grained_attributes(products):
    items = {g: (views[0].category, tuple(sorted(views[0].attributes.items()))) for g, views in _groups(products).items()}
    assert len(set(items.values())) == len(items), "two different items share category and all attributes"
    one_apart = 0
    for (ca, aa), (cb, ab) in itertools.combinations(items.values(), 2):
        if ca == cb and sum(x != y for x, y in zip(aa, ab)) == 1:
            one_apart += 1
    assert one_apart >= 3, "families of near-duplicates (one attribute apart) are what makes the task fine-grained"


def test_queries_come_from_attributes(products):
    for p in products:
        assert p.queries
        for query in p.queries:
            assert sum(bool(find_mention(query, v)) for v in p.attributes.values()) >= 2, query


def test_split_is_by_group(catalog, products):
    train, test = read_split_ids(catalog, "train"), read_split_ids(catalog, "test")
    assert sorted(train + test) == sorted(p.id for p in products)
    group_of = {p.id: p.group_id for p in products}
    assert not {group_of[i] for i in train} & {group_of[i] for i in test}
    assert 0.1 <= len(test) / N <= 0.35


def test_image_shows_colour_pattern_and_shape():
    plain = View()  # centred, white background, no noise
    navy = render("mug", {"colour": "navy", "pattern": "plain", "shape": "straight"}, 64, plain)
    assert navy.getpixel((28, 34)) == COLOURS["navy"]
    red = render("mug", {"colour": "red", "pattern": "plain", "shape": "straight"}, 64, plain)
    assert red.getpixel((28, 34)) == COLOURS["red"]
    striped = render("mug", {"colour": "navy", "pattern": "striped", "shape": "straight"}, 64, plain)
    assert len(set(striped.crop((20, 20, 36, 48)).getdata())) > len(set(navy.crop((20, 20, 36, 48)).getdata()))
    short = render("tshirt", {"colour": "red", "sleeve": "short sleeve"}, 64, plain)
    long = render("tshirt", {"colour": "red", "sleeve": "long sleeve"}, 64, plain)
    # A long sleeve reaches down past the hip; the short one does not.
    assert long.getpixel((52, 42)) == COLOURS["red"] and short.getpixel((52, 42)) == (255, 255, 255)


def test_refuses_to_overwrite_without_force(tmp_path):
    out = _make(tmp_path / "cat", products=6)
    with pytest.raises(DataPrepError, match="--force"):
        _make(out, seed=1, products=6)
    synth_catalog(out, SynthConfig(products=4, seed=1), force=True, progress=False)
    assert len(load_catalog(out)) == 4
    assert len(list((out / "images").iterdir())) == 4  # stale images of the first run are gone
