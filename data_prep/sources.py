"""Turn a real catalog into a moon-rl catalog folder (products.jsonl + images/ + splits/ + catalog.json).

    moon-rl data prepare --source catalog --input shop.csv --out data/shop --map title=product_name
    python -c "from data_prep.sources import convert_source; print(convert_source('ae110k', ..., ...))"

`SOURCES` is the explicit table of loaders, one module each (see its docstring for its input layout):

    catalog      your own catalog: JSONL, CSV/TSV or Parquet + image folder, columns mapped with --map
    ae110k       AE-110K title + attribute-value JSONL (ExtractGPT layout), folder or one file
    oamine       OA-Mine, same layout as ae110k
    matching     product matching tables (tableA/tableB + labelled pairs) -> query/corpus retrieval splits
    implicitave  ImplicitAVE as published (evaluation_data/ + training_data/ TSVs, options_*.json, images/)

A loader's `load(ctx) -> Loaded` only reads its format and yields `Row`s (a candidate record plus the file and
1-based line it came from). This module does what is common: validates each record with
`data_prep.schema.validate_record`, rejects duplicate ids, opens and copies every image (`data_prep.images`),
applies the error policy and writes the catalog atomically with `write_catalog`.

Error policy (`on_error`): "stop" (default) raises a `DataPrepError` at the first bad row, naming file, line,
record id and field; "skip" drops bad rows and reports how many and the first few reasons. Problems with a whole
file (missing column, empty dataset, unreadable file, unknown source) always stop.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_prep.errors import DataPrepError
from data_prep.images import DEFAULT_MAX_PIXELS, ImageStore
from data_prep.schema import SPLITS_DIR, RecordError, validate_record, write_catalog

ON_ERROR_CHOICES = ("stop", "skip")
MAX_REASONS = 10  # skip reasons kept in the report; the count covers all


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    module: str  # imported only when used, so pyarrow etc. load lazily
    help: str


SOURCES: dict[str, SourceSpec] = {
    "catalog": SourceSpec("data_prep.catalog_source", "your own catalog: JSONL/CSV/TSV/Parquet + image folder"),
    "ae110k": SourceSpec("data_prep.ae110k", "AE-110K title + attribute-value JSONL (folder with train/test)"),
    "oamine": SourceSpec("data_prep.ae110k", "OA-Mine title + attribute-value JSONL (folder with train/test)"),
    "matching": SourceSpec("data_prep.matching", "matching tables tableA/tableB.csv + labelled pairs"),
    "implicitave": SourceSpec("data_prep.implicitave", "ImplicitAVE root folder or one of its TSVs, options_*.json, images/"),
}


@dataclasses.dataclass(frozen=True)
class Row:
    """A candidate product record from a loader, with its origin for error messages."""

    file: Path
    line: int  # 1-based, as editors show it (CSV: the header is line 1)
    record: dict[str, Any]  # schema fields; "images" holds references as found in the source
    splits: tuple[str, ...] = ()
    image_dir: Path | None = None  # relative image references are resolved against this folder


@dataclasses.dataclass
class Loaded:
    rows: Iterable[Row]
    files: list[Path]  # the files read, for messages such as "empty dataset"
    total: int | None = None  # expected number of rows, for the progress bar
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: dict[str, Any] | None = None  # what the loader found (e.g. per domain), shown in the report


def where(file: Path | str, line: int, record_id: Any = None) -> str:
    """The location prefix every message uses: `file:line (id='x')` (same shape as the schema's errors)."""
    loc = f"{file}:{line}"
    return f"{loc} (id={record_id!r})" if record_id not in (None, "") else loc


@dataclasses.dataclass
class ConvertContext:
    """What a loader gets: the arguments, plus `bad()` to report a bad row under the error policy."""

    source: str
    input: Path
    out: Path
    mapping: dict[str, str]
    on_error: str = "stop"
    allow_remote_images: bool = False
    skipped: int = 0
    skip_reasons: list[str] = dataclasses.field(default_factory=list)

    def bad(self, message: str) -> None:
        """Stop with `message`, or (with on_error="skip") count it; the caller then drops the row."""
        if self.on_error == "stop":
            raise DataPrepError(f"{message} (fix the row, or pass --on-error skip to skip bad rows)")
        self.skipped += 1
        if len(self.skip_reasons) < MAX_REASONS:
            self.skip_reasons.append(message)

    def check_mapping(self, allowed: Iterable[str]) -> None:
        """Fail on --map keys this source does not use ("attributes.NAME" is allowed when "attributes" is)."""
        allowed = sorted(allowed)
        prefix_ok = "attributes" in allowed
        unknown = sorted(
            k for k in self.mapping if k not in allowed and not (prefix_ok and k.startswith("attributes."))
        )
        if unknown:
            raise DataPrepError(
                f"--map {unknown}: not a mappable field for --source {self.source}; "
                + (f"mappable fields are {allowed}" if allowed else "this source takes no --map")
            )


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """`["title=product_name", "images=img_path"]` (repeated --map flags) -> {"title": "product_name", ...}."""
    mapping: dict[str, str] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise DataPrepError(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map title=product_name")
        mapping[field.strip()] = column.strip()
    return mapping


def _check_args(source: str, input: Path, out: Path, on_error: str) -> SourceSpec:
    if source not in SOURCES:
        listed = ", ".join(f"{name} ({spec.help})" for name, spec in SOURCES.items())
        raise DataPrepError(f"unknown source {source!r}; available sources: {listed}")
    if on_error not in ON_ERROR_CHOICES:
        raise DataPrepError(f"--on-error {on_error!r}: choose one of {list(ON_ERROR_CHOICES)}")
    if not input.exists():
        raise DataPrepError(f"{input}: input not found")
    input_dir = input.resolve() if input.is_dir() else input.resolve().parent
    if out.resolve() == input_dir:
        raise DataPrepError(f"--out {out}: is the input folder; write the converted catalog to a new folder")
    if out.exists() and not out.is_dir():
        raise DataPrepError(f"--out {out}: exists and is not a folder")
    return SOURCES[source]


def convert_source(
    source: str,
    input: str | Path,
    out: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    on_error: str = "stop",
    allow_remote_images: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Convert `input` (format given by `source`) into a moon-rl catalog at `out`; returns a report dict:

    {"source", "input", "out", "records", "groups", "images", "skipped", "skip_reasons" (first few),
     "splits" (name -> count), "summary" (when the loader gives one, e.g. per-domain counts), "seconds"}
    """
    start = time.perf_counter()
    input, out = Path(input), Path(out)
    spec = _check_args(source, input, out, on_error)
    ctx = ConvertContext(source, input, out, dict(mapping or {}), on_error, allow_remote_images)
    store = ImageStore(out, allow_remote=allow_remote_images, max_pixels=max_pixels)
    loaded: Loaded = importlib.import_module(spec.module).load(ctx)

    products, splits, first_seen = [], {}, {}
    rows = tqdm(loaded.rows, total=loaded.total, desc=f"prepare {source}", unit="row", disable=None)
    for row in rows:
        try:
            product = validate_record(row.record, row.line - 1, str(row.file))
        except RecordError as err:
            ctx.bad(str(err))
            continue
        loc = where(row.file, row.line, product.id)
        if product.id in first_seen:
            ctx.bad(f"{loc}: field 'id': duplicate id, first seen at {first_seen[product.id]}")
            continue
        try:
            product.images = [store.add(ref, row.image_dir or input) for ref in product.images]
        except DataPrepError as err:
            ctx.bad(f"{loc}: field 'images': {err}")
            continue
        first_seen[product.id] = f"{row.file}:{row.line}"
        products.append(product)
        for split in row.splits:
            splits.setdefault(split, []).append(product.id)

    files = ", ".join(str(f) for f in loaded.files) or str(input)
    if not products:
        if ctx.skipped:
            raise DataPrepError(f"{files}: no records left: all {ctx.skipped} rows were bad; first: {ctx.skip_reasons[0]}")
        raise DataPrepError(f"{files}: empty dataset, no product rows found")

    meta = {
        "name": input.stem if input.is_file() else input.resolve().name,
        "source": source,
        "input": str(input),
        "attributes": sorted({name for p in products for name in p.attributes}),
        **loaded.meta,
    }
    # A rerun into the same folder must not leave split files of an earlier conversion behind.
    for stale in (out / SPLITS_DIR).glob("*.txt"):
        if stale.stem not in splits:
            stale.unlink()
    write_catalog(out, products, splits, meta)
    return {
        "source": source,
        "input": str(input),
        "out": str(out),
        "records": len(products),
        "groups": len({p.group_id for p in products}),
        "images": len(store.stored),
        "skipped": ctx.skipped,
        "skip_reasons": list(ctx.skip_reasons),
        "splits": {name: len(ids) for name, ids in splits.items()},
        **({"summary": loaded.summary} if loaded.summary else {}),
        "seconds": round(time.perf_counter() - start, 3),
    }


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines for the CLI."""
    lines = [
        f"wrote {report['records']} records ({report['groups']} groups, {report['images']} images) "
        f"to {report['out']} in {report['seconds']:.1f}s",
    ]
    if report["splits"]:
        lines.append("splits: " + ", ".join(f"{k}={v}" for k, v in report["splits"].items()))
    for name, stats in (report.get("summary") or {}).items():
        lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    if report["skipped"]:
        lines.append(f"skipped {report['skipped']} bad rows; first reasons:")
        lines.extend(f"  {reason}" for reason in report["skip_reasons"])
    return "\n".join(lines)
