"""`--source implicitave`: closed-set attribute records from a TSV in the ImplicitAVE layout.

    moon-rl data prepare --source implicitave --input implicitave/ --out data/implicitave

Input: one .tsv file (its stem is the split name) or a folder of them (train.tsv, valid.tsv, test.tsv first,
then any other *.tsv). Columns (header row, tab-separated; other columns are ignored):

    id                product id, unique across the files
    images            image paths relative to the TSV's folder: JSON list or `|`-separated (may be empty)
    category          category path ("Clothing > Tops" or one level)
    texts             the product text: a string, or a JSON list whose first item is the title and the rest
                      the description
    attribute_names   JSON list or `|`-separated, parallel to attribute_values
    attribute_values  JSON list or `|`-separated
    options           JSON object {attribute name: [allowed values]}

Written from this column description (no copy of ImplicitAVE is available here), one row per product.
Bad rows: names and values of different lengths, an attribute without options, a value not among its
options, options that are not a JSON object of lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_prep.catalog_source import CellError, count_lines, parse_list, parse_object, read_csv_rows
from data_prep.sources import Loaded, Row, where
from moon_rl.errors import MoonError

if TYPE_CHECKING:
    from data_prep.sources import ConvertContext

COLUMNS = ("id", "images", "category", "texts", "attribute_names", "attribute_values", "options")
SPLIT_ORDER = ("train", "valid", "test")


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    def order(p: Path) -> tuple[int, str]:
        return (SPLIT_ORDER.index(p.stem) if p.stem in SPLIT_ORDER else len(SPLIT_ORDER), p.name)

    tsvs = sorted(path.glob("*.tsv"), key=order)
    if not tsvs:
        raise MoonError(f"{path}: no .tsv files in the folder; --source implicitave reads {list(COLUMNS)} TSVs")
    return tsvs


def _texts(value: str) -> tuple[str, str | None]:
    text = value.strip()
    if text.startswith("["):
        parts = parse_list(text, "texts")
        if not all(isinstance(p, str) for p in parts):
            raise CellError(f"field 'texts': expected a list of strings, got {text!r:.60}")
        parts = [p.strip() for p in parts if p.strip()]
        return (parts[0] if parts else ""), ("\n".join(parts[1:]) or None)
    return text, None


def _options(value: str) -> dict[str, list[str]]:
    options = parse_object(value, "options") if value.strip() else {}
    for name, allowed in options.items():
        if not isinstance(allowed, list) or not allowed or not all(isinstance(v, str) for v in allowed):
            raise CellError(
                f"field 'options': attribute {name!r}: expected a non-empty list of strings, got {allowed!r:.60}"
            )
    return options


def build_record(raw: dict[str, str]) -> dict[str, Any]:
    """One TSV row -> schema record (images still as written); raises `CellError` naming the field."""
    names = parse_list(raw["attribute_names"], "attribute_names")
    values = parse_list(raw["attribute_values"], "attribute_values")
    if len(names) != len(values):
        raise CellError(f"field 'attribute_values': {len(values)} values for {len(names)} attribute_names {names}")
    options = _options(raw["options"])
    attributes: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if name not in options:
            raise CellError(f"field 'options': no options for attribute {name!r} (options has {sorted(options)})")
        if value not in options[name]:
            raise CellError(
                f"field 'attribute_values': value {value!r} of {name!r} is not among its options {options[name]}"
            )
        attributes[name] = value
    title, description = _texts(raw["texts"])
    record = {
        "id": raw["id"].strip(),
        "title": title,
        "category": raw["category"].strip(),
        "images": parse_list(raw["images"], "images"),
        "attributes": attributes,
        "options": options,
    }
    if description:
        record["description"] = description
    return record


def load(ctx: ConvertContext) -> Loaded:
    ctx.check_mapping([])
    files = _files(ctx.input)

    def rows() -> Iterator[Row]:
        for path in files:
            for line, raw in read_csv_rows(path, ctx, delimiter="\t", required=COLUMNS):
                try:
                    record = build_record(raw)
                except CellError as err:
                    ctx.bad(f"{where(path, line, raw['id'].strip())}: {err}")
                    continue
                yield Row(path, line, record, (path.stem,), image_dir=path.parent)

    meta = {"files": [p.name for p in files], "closed_set": True}
    return Loaded(rows(), files, sum(max(count_lines(p) - 1, 0) for p in files), meta)
