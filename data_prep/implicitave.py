"""`--source implicitave`: the ImplicitAVE dataset (NAACL 2024) as it is published.

    moon-rl data prepare --source implicitave --input ImplicitAVE/data --out data/implicitave
    moon-rl data prepare --source implicitave --input ImplicitAVE/data/evaluation_data/texts/Food_annotated_final.tsv ...

The published layout (`--input` is its root folder, or any one TSV in it):

    evaluation_data/texts/<Domain>_annotated_final.tsv       the benchmark (split "test")
    evaluation_data/texts/options_<Domain>.json              attribute name -> allowed values
    evaluation_data/images/<id>.jpg                          from images_evaluation.zip (+ macOS ._*.jpg, ignored)
    training_data/texts/<Domain>/{train,val,test,train_and_val}.tsv
    training_data/images/...                                  any depth

Domains: Clothing, Food, Footwear, Home, Jewlery_and_General_Apparel (sic). Columns, tab-separated:
`id` (an ASIN), `images` (a file name, `B00B8JHXGG.jpg`), `category` (one level), `texts` (a plain string
`[Title] ...`, not JSON), `attribute_names`, `attribute_values` (one attribute per row; a product may have
several rows).

What this loader does with it:
- The split comes from the file name: `train`, `val`, `test`; `*_annotated_final.tsv` is `test` (the
  evaluation set). `train_and_val.tsv` is the union of train and val, so it is read only in a folder without
  them (as `train`).
- The rows of one product (same `id`, in any file of the input) become one record with all its attributes and
  every split it appears in. Two rows giving one attribute different values are a bad row.
- Options are not a column: `options_<Domain>.json`, searched under the input's root (nearest to the TSV
  first); Clothing, Footwear and Jewlery_and_General_Apparel share `options_Clothing_Shoes_and_Jewelry.json`.
  A record carries the option lists of its own attributes only; a value outside its list is a bad row.
- Images are found by file name in any `images*` folder under the root (nearest to the TSV first), skipping
  macOS resource forks (`._*`, `__MACOSX/`), which are not images. A product whose image is not there (the
  images ship as separate zips) keeps its text and is counted as `images_missing` in the summary.
- `[Title] ` is stripped from `texts`; any other `[Marker] ...` section becomes the description.
- Every image the prompt shows may carry the value (the values are implicit by design), so the catalog says
  `"image_attributes": "all"` and SFT traces say the image shows what the title does not state.

The report's `summary` gives per domain the products, rows, images found and missing, and options.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_prep.catalog_source import count_lines, read_csv_rows
from data_prep.errors import DataPrepError
from data_prep.sources import Loaded, Row, where

if TYPE_CHECKING:
    from data_prep.sources import ConvertContext

COLUMNS = ("id", "images", "category", "texts", "attribute_names", "attribute_values")
EVAL_SUFFIX = "_annotated_final"
SPLITS = {"train": "train", "val": "val", "test": "test"}
UNION_FILE = "train_and_val"  # train.tsv + val.tsv in one file: read only when they are absent
LAYOUT_DIRS = ("evaluation_data", "training_data")
# The published option files do not match the domains one to one.
SHARED_OPTIONS = {
    "Clothing": "Clothing_Shoes_and_Jewelry",
    "Footwear": "Clothing_Shoes_and_Jewelry",
    "Jewlery_and_General_Apparel": "Clothing_Shoes_and_Jewelry",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
_MARKER = re.compile(r"\[([A-Za-z ]+)\]\s*")


@dataclasses.dataclass(frozen=True)
class TsvFile:
    path: Path
    domain: str
    split: str


def is_resource_fork(path: Path) -> bool:
    """macOS zip residue (`._name.jpg`, `__MACOSX/`): metadata, not an image or a table."""
    return path.name.startswith("._") or "__MACOSX" in path.parts


def describe_file(path: Path) -> TsvFile:
    """Domain and split of one published TSV, from its name (and, under training_data, its folder)."""
    stem = path.stem
    if stem.endswith(EVAL_SUFFIX):
        return TsvFile(path, stem[: -len(EVAL_SUFFIX)], "test")
    if stem == UNION_FILE:
        return TsvFile(path, path.parent.name, "train")
    if stem in SPLITS:
        return TsvFile(path, path.parent.name, SPLITS[stem])
    raise DataPrepError(
        f"{path}: not an ImplicitAVE file name; expected <Domain>{EVAL_SUFFIX}.tsv or "
        f"<Domain>/{{train,val,test,{UNION_FILE}}}.tsv"
    )


def find_files(path: Path) -> list[TsvFile]:
    if path.is_file():
        return [describe_file(path)]
    tsvs = sorted(p for p in path.rglob("*.tsv") if not is_resource_fork(p))
    names = {(p.parent, p.stem) for p in tsvs}
    files = [
        describe_file(p)
        for p in tsvs
        if not (p.stem == UNION_FILE and ((p.parent, "train") in names or (p.parent, "val") in names))
    ]
    if not files:
        raise DataPrepError(
            f"{path}: no ImplicitAVE .tsv files under the folder; expected evaluation_data/texts/<Domain>"
            f"{EVAL_SUFFIX}.tsv and/or training_data/texts/<Domain>/train.tsv"
        )
    return files


def dataset_root(path: Path) -> Path:
    """The folder searched for options and images: the input folder, or for one file the folder above
    evaluation_data/ or training_data/ (else the folder above texts/, else the file's folder)."""
    if path.is_dir():
        return path
    for parent in path.parents:
        if parent.name in LAYOUT_DIRS:
            return parent.parent
    return path.parent.parent if path.parent.name == "texts" else path.parent


def _scan(root: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(option files by domain name, image files by file name) under `root`, resource forks skipped."""
    options: dict[str, list[Path]] = {}
    images: dict[str, list[Path]] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__MACOSX")
        here = Path(folder)
        in_images = any(part.startswith("images") for part in here.relative_to(root).parts)
        for name in sorted(names):
            if name.startswith("._"):
                continue
            if name.startswith("options_") and name.endswith(".json"):
                options.setdefault(name[len("options_") : -len(".json")], []).append(here / name)
            elif in_images and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                images.setdefault(name, []).append(here / name)
    return options, images


def _nearest(candidates: list[Path], near: Path) -> Path:
    """The candidate sharing the longest path prefix with `near` (ties: the first, in sorted walk order)."""
    return max(candidates, key=lambda p: _common(p.parts, near.parts))


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def read_options(path: Path) -> dict[str, list[str]]:
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataPrepError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(options, dict) or not all(
        isinstance(v, list) and v and all(isinstance(x, str) for x in v) for v in options.values()
    ):
        raise DataPrepError(f"{path}: expected a JSON object of attribute name -> non-empty list of allowed values")
    return options


def split_texts(texts: str) -> tuple[str, str | None]:
    """`[Title] Cotton tee [Description] soft` -> ("Cotton tee", "soft"); a string without markers is the title.

    >>> split_texts("[Title] LAT Ladies' Fine Jersey Raglan Baseball Tee")
    ("LAT Ladies' Fine Jersey Raglan Baseball Tee", None)
    """
    parts = _MARKER.split(texts.strip())
    if len(parts) == 1:
        return texts.strip(), None
    sections = {parts[i].strip().lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    title = sections.pop("title", "") or parts[0].strip()
    description = "\n".join(v for v in sections.values() if v) or None
    return title, description


@dataclasses.dataclass
class _Product:
    file: Path
    line: int
    domain: str
    record: dict[str, Any]
    splits: list[str]
    image_names: list[str]


def load(ctx: ConvertContext) -> Loaded:
    ctx.check_mapping([])
    files = find_files(ctx.input)
    root = dataset_root(ctx.input).resolve()
    option_files, image_files = _scan(root)

    options_by_domain: dict[str, tuple[Path | None, dict[str, list[str]]]] = {}
    for f in files:
        if f.domain in options_by_domain:
            continue
        found = option_files.get(f.domain) or option_files.get(SHARED_OPTIONS.get(f.domain, ""))
        path = _nearest(found, f.path.resolve()) if found else None
        options_by_domain[f.domain] = (path, read_options(path) if path else {})

    products: dict[str, _Product] = {}
    rows_per_domain: dict[str, int] = {}
    for f in files:
        domain_options = options_by_domain[f.domain][1]
        for line, raw in read_csv_rows(f.path, ctx, delimiter="\t", required=COLUMNS):
            pid = raw["id"].strip()
            loc = where(f.path, line, pid)
            name, value = raw["attribute_names"].strip(), raw["attribute_values"].strip()
            if not name or not value:
                ctx.bad(f"{loc}: field 'attribute_names'/'attribute_values': both must be non-empty, got {name!r}, {value!r}")
                continue
            allowed = domain_options.get(name)
            if allowed is not None and value not in allowed:
                ctx.bad(
                    f"{loc}: field 'attribute_values': value {value!r} of {name!r} is not among its options {allowed} "
                    f"({options_by_domain[f.domain][0]})"
                )
                continue
            product = products.get(pid)
            if product is None:
                title, description = split_texts(raw["texts"])
                record: dict[str, Any] = {"id": pid, "title": title, "category": raw["category"].strip(), "attributes": {}}
                if description:
                    record["description"] = description
                names = [n.strip() for n in raw["images"].split("|") if n.strip()]
                product = products[pid] = _Product(f.path, line, f.domain, record, [], names)
            attributes = product.record["attributes"]
            if attributes.get(name, value) != value:
                ctx.bad(
                    f"{loc}: field 'attribute_values': {name!r} is {value!r} here but {attributes[name]!r} at "
                    f"{product.file}:{product.line}"
                )
                continue
            attributes[name] = value
            if allowed is not None:
                product.record.setdefault("options", {})[name] = allowed
            if f.split not in product.splits:
                product.splits.append(f.split)
            rows_per_domain[f.domain] = rows_per_domain.get(f.domain, 0) + 1

    summary: dict[str, dict[str, Any]] = {}
    rows: list[Row] = []
    for product in products.values():
        stats = summary.setdefault(
            product.domain, {"products": 0, "rows": rows_per_domain.get(product.domain, 0), "images": 0, "images_missing": 0}
        )
        stats["products"] += 1
        refs = []
        for name in product.image_names:
            found = image_files.get(name) or image_files.get(Path(name).name)
            if found:
                refs.append(str(_nearest(found, product.file.resolve()).relative_to(root)))
            stats["images_missing" if not found else "images"] += 1
        product.record["images"] = refs
        rows.append(Row(product.file, product.line, product.record, tuple(product.splits), image_dir=root))
    for domain, (path, options) in options_by_domain.items():
        stats = summary.setdefault(domain, {"products": 0, "rows": 0, "images": 0, "images_missing": 0})
        stats["options"] = len(options)
        stats["options_file"] = str(path.relative_to(root)) if path else None

    def iter_rows() -> Iterator[Row]:
        yield from rows

    meta = {
        "dataset": "ImplicitAVE",
        "files": [str(f.path.relative_to(root)) if f.path.resolve().is_relative_to(root) else str(f.path) for f in files],
        "closed_set": True,
        "image_attributes": "all",  # the values are implicit: the image is where they show (data_prep/formats.py)
        "domains": summary,
    }
    total = sum(max(count_lines(f.path) - 1, 0) for f in files)
    return Loaded(iter_rows(), [f.path for f in files], len(rows) if rows else total, meta, summary=summary)
