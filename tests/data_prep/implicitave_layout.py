"""A small ImplicitAVE in the dataset's published layout, for tests (not a test module).

    root/evaluation_data/texts/{Clothing,Footwear,Food}_annotated_final.tsv
    root/evaluation_data/texts/options_{Clothing_Shoes_and_Jewelry,Food}.json
    root/evaluation_data/images/<id>.jpg        real JPEGs, plus macOS ._<id>.jpg resource forks
    root/training_data/texts/Clothing/{train,val,train_and_val}.tsv
    root/training_data/images/<id>.jpg

Rows as published: tab-separated, `texts` is "[Title] ...", one attribute per row (product E2 has two rows),
one evaluation product (E5) has no image file. Counts the tests check are in `EXPECTED`.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

HEADER = ["id", "images", "category", "texts", "attribute_names", "attribute_values"]
CSJ_OPTIONS = {
    "Sleeve Style": ["3/4 Sleeve", "Long Sleeve", "Short Sleeve", "Sleeveless"],
    "Neckline": ["Crew Neck", "V-Neck", "Halter"],
    "Shaft Height": ["Ankle Boot", "Knee High"],
}
FOOD_OPTIONS = {"Flavor": ["Chocolate", "Vanilla", "Strawberry"]}

EVAL_ROWS = {
    "Clothing": [
        ["E1", "E1.jpg", "Shirts & Tops", "[Title] LAT Ladies' Fine Jersey Raglan Baseball Tee", "Sleeve Style", "3/4 Sleeve"],
        ["E2", "E2.jpg", "Dresses", "[Title] Ali Ro Women's Paisley Matte Jersey Dress", "Sleeve Style", "Long Sleeve"],
        ["E2", "E2.jpg", "Dresses", "[Title] Ali Ro Women's Paisley Matte Jersey Dress", "Neckline", "Halter"],
        ["E3", "E3.jpg", "Shirts & Tops", '"[Title] HUF ""Script"" Tee"', "Neckline", "Crew Neck"],
        ["E4", "E4.jpg", "Shirts & Tops", "[Title] Jockey Men's Core Cut T-Shirt", "Sleeve Style", "3/4 Sleeve"],
    ],
    "Footwear": [
        ["E5", "E5.jpg", "Shoes", "[Title] Rampage Women's Tarragon", "Shaft Height", "Ankle Boot"],
        ["E6", "E6.jpg", "Shoes", "[Title] Diba True Women's Flower Child Boot", "Shaft Height", "Knee High"],
    ],
    "Food": [
        ["E7", "E7.jpg", "Snacks", "[Title] Cocoa Crunch Bar", "Flavor", "Chocolate"],
    ],
}
TRAIN_ROWS = {
    "train": [
        ["T1", "T1.jpg", "Shirts & Tops", "[Title] Hanes Men's Soft Preshrunk T Shirt", "Sleeve Style", "Short Sleeve"],
        ["T2", "T2.jpg", "Dresses", "[Title] London Times Women's Sheath Dress", "Sleeve Style", "Sleeveless"],
        ["T3", "T3.jpg", "Dresses", "[Title] Nine West Tie Neck Basic Dress", "Neckline", "Halter"],
        ["T4", "T4.jpg", "Shirts & Tops", "[Title] POSESHE Women's Loose Casual Top", "Neckline", "V-Neck"],
        ["T5", "T5.jpg", "Shirts & Tops", "[Title] Cinxon Olive Oil Short Tee Shirt", "Sleeve Style", "Short Sleeve"],
        ["T6", "T6.jpg", "Shirts & Tops", "[Title] Richie House Girls' Top", "Sleeve Style", "Long Sleeve"],
    ],
    "val": [
        ["V1", "V1.jpg", "Dresses", "[Title] Marycrafts Boho Maxi Dress", "Sleeve Style", "Sleeveless"],
    ],
}
EXPECTED = {
    "records": 14,
    "splits": {"test": 7, "train": 6, "val": 1},
    "summary": {
        "Clothing": {"products": 11, "rows": 12, "images": 11, "images_missing": 0, "options": 3,
                     "options_file": "evaluation_data/texts/options_Clothing_Shoes_and_Jewelry.json"},
        "Footwear": {"products": 2, "rows": 2, "images": 1, "images_missing": 1, "options": 3,
                     "options_file": "evaluation_data/texts/options_Clothing_Shoes_and_Jewelry.json"},
        "Food": {"products": 1, "rows": 1, "images": 1, "images_missing": 0, "options": 1,
                 "options_file": "evaluation_data/texts/options_Food.json"},
    },
}


def _tsv(path: Path, rows: list[list[str]]) -> None:
    # Written by hand, not with csv.writer, so the quoting is the dataset's own (see E3).
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(r) + "\n" for r in [HEADER, *rows]), encoding="utf-8")


def _jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)
    Image.new("RGB", (16, 16), colour).save(path, format="JPEG")
    # What unzipping images_evaluation.zip on macOS leaves beside each image: not an image.
    (path.parent / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")


def make_implicitave(root: Path) -> Path:
    """Write the layout under `root` and return it."""
    texts = root / "evaluation_data" / "texts"
    for domain, rows in EVAL_ROWS.items():
        _tsv(texts / f"{domain}_annotated_final.tsv", rows)
    (texts / "options_Clothing_Shoes_and_Jewelry.json").write_text(json.dumps(CSJ_OPTIONS, indent=4))
    (texts / "options_Food.json").write_text(json.dumps(FOOD_OPTIONS, indent=4))
    train_texts = root / "training_data" / "texts" / "Clothing"
    for split, rows in TRAIN_ROWS.items():
        _tsv(train_texts / f"{split}.tsv", rows)
    _tsv(train_texts / "train_and_val.tsv", TRAIN_ROWS["train"] + TRAIN_ROWS["val"])  # the union: not read twice
    ids = sorted({r[0] for rows in EVAL_ROWS.values() for r in rows} - {"E5"})
    for k, pid in enumerate(ids):
        _jpeg(root / "evaluation_data" / "images" / f"{pid}.jpg", k)
    for k, pid in enumerate(sorted({r[0] for rows in TRAIN_ROWS.values() for r in rows})):
        _jpeg(root / "training_data" / "images" / f"{pid}.jpg", 50 + k)
    return root
