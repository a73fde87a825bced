"""`--source implicitave` on the dataset's published layout (tests/data_prep/implicitave_layout.py)."""

from __future__ import annotations

import json

import pytest
from datasets import load_from_disk
from implicitave_layout import EXPECTED, make_implicitave
from PIL import Image

from data_prep.errors import DataPrepError
from data_prep.formats import parse_trace
from data_prep.implicitave import split_texts
from data_prep.schema import load_catalog, read_split_ids
from data_prep.sources import convert_source, format_report
from data_prep.tasks import prepare_task


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = make_implicitave(tmp_path_factory.mktemp("iave") / "ImplicitAVE")
    out = tmp_path_factory.mktemp("iave-out") / "catalog"
    return root, out, convert_source("implicitave", root, out)


def test_root_folder_prepares_without_a_flag(converted):
    root, out, report = converted
    assert report["skipped"] == 0, report["skip_reasons"]
    assert report["records"] == EXPECTED["records"] and report["splits"] == EXPECTED["splits"]
    assert report["summary"] == EXPECTED["summary"]
    assert "Footwear: products=2, rows=2, images=1, images_missing=1" in format_report(report)
    meta = json.loads((out / "catalog.json").read_text())
    assert meta["image_attributes"] == "all" and "training_data/texts/Clothing/train_and_val.tsv" not in meta["files"]


def test_rows_of_one_product_merge_with_their_domain_options(converted):
    _, out, _ = converted
    products = {p.id: p for p in load_catalog(out)}
    e2 = products["E2"]
    assert e2.attributes == {"Sleeve Style": "Long Sleeve", "Neckline": "Halter"}
    assert e2.title == "Ali Ro Women's Paisley Matte Jersey Dress" and e2.category == "Dresses"
    # Only the option lists of its own attributes, from the shared Clothing_Shoes_and_Jewelry file.
    assert set(e2.options) == {"Sleeve Style", "Neckline"} and "Halter" in e2.options["Neckline"]
    assert products["E6"].options == {"Shaft Height": ["Ankle Boot", "Knee High"]}
    assert products["E7"].options == {"Flavor": ["Chocolate", "Vanilla", "Strawberry"]}
    assert products["E3"].title == 'HUF "Script" Tee'
    # Images: the real JPEG (the ._ resource fork is ignored), decodable; E5 has none on disk.
    with Image.open(out / e2.images[0]) as img:
        assert img.format == "JPEG" and img.size == (16, 16)
    assert products["E5"].images == []
    assert sorted(read_split_ids(out, "test")) == ["E1", "E2", "E3", "E4", "E5", "E6", "E7"]


def test_any_one_file_is_an_input(tmp_path):
    root = make_implicitave(tmp_path / "ImplicitAVE")
    report = convert_source("implicitave", root / "evaluation_data/texts/Food_annotated_final.tsv", tmp_path / "food")
    assert report["splits"] == {"test": 1} and report["images"] == 1
    assert report["summary"]["Food"]["options_file"] == "evaluation_data/texts/options_Food.json"
    report = convert_source("implicitave", root / "training_data/texts/Clothing/val.tsv", tmp_path / "val")
    assert report["splits"] == {"val": 1} and report["images"] == 1
    assert load_catalog(tmp_path / "val")[0].options["Sleeve Style"][0] == "3/4 Sleeve"


def test_value_outside_its_options_and_conflicting_rows_are_bad_rows(tmp_path):
    root = make_implicitave(tmp_path / "ImplicitAVE")
    path = root / "evaluation_data/texts/Food_annotated_final.tsv"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("E8\tE8.jpg\tSnacks\t[Title] Mint bar\tFlavor\tMint\n")
        fh.write("E7\tE7.jpg\tSnacks\t[Title] Cocoa Crunch Bar\tFlavor\tVanilla\n")
    with pytest.raises(DataPrepError, match=rf"{path}:3 \(id='E8'\): field 'attribute_values': value 'Mint' of 'Flavor'"):
        convert_source("implicitave", path, tmp_path / "out")
    report = convert_source("implicitave", path, tmp_path / "out", on_error="skip")
    assert report["records"] == 1 and report["skipped"] == 2
    assert "'Flavor' is 'Vanilla' here but 'Chocolate'" in report["skip_reasons"][1]


def test_not_a_published_file_name_is_named(tmp_path):
    bad = tmp_path / "products.tsv"
    bad.write_text("id\n")
    with pytest.raises(DataPrepError, match="not an ImplicitAVE file name"):
        convert_source("implicitave", bad, tmp_path / "out")


def test_split_texts():
    assert split_texts("[Title] Tee") == ("Tee", None)
    assert split_texts("[Title] Tee [Description] soft cotton") == ("Tee", "soft cotton")
    assert split_texts("Plain title") == ("Plain title", None)


def test_sft_traces_say_the_image_shows_what_the_title_does_not(converted, tmp_path):
    _, out, _ = converted
    ds = prepare_task("sft", out, tmp_path / "sft", split="train", progress=False)
    assert len(ds) == 6 and all(len(row) == 1 for row in ds["images"])
    think, answer = parse_trace(ds[0]["completion"][0]["content"])
    assert answer == {"Sleeve Style": "Short Sleeve"}
    assert "the title does not say; the image shows Short Sleeve -> Sleeve Style: Short Sleeve" in think
    text_only = prepare_task("sft", out, None, split="train", with_images=False, progress=False)
    assert "image" not in parse_trace(text_only[0]["completion"][0]["content"])[0]
    grpo = load_from_disk(str(tmp_path / "sft"))
    assert json.loads(grpo[0]["options"])["Sleeve Style"][0] == "3/4 Sleeve"
