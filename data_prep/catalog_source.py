"""`--source catalog`: a retailer's own catalog (JSONL, CSV, TSV or Parquet) plus an image folder.

    moon-rl data prepare --source catalog --input shop/products.csv --out data/shop \
        --map title=product_name --map images=img_path --map attributes.colour=color

Input: a table file, or a folder holding exactly one table (*.jsonl, *.csv, *.tsv, *.parquet). Image
references are paths relative to the table's folder (URLs only with --allow-remote-images).

Columns: a column named like a schema field (id, title, description, images, category, attributes, queries,
group_id, options, reasoning) fills it; `--map FIELD=COLUMN` takes it from another column. Two extra mapping
keys: `attributes.NAME=COLUMN` puts one column into attribute NAME, and `split=COLUMN` assigns each row to
splits/<value>.txt (a column named "split" is used without mapping). Other columns are ignored.

Cell formats in CSV/TSV (every cell is text there): list fields (images, queries) are a JSON list
(`["a.jpg", "b.jpg"]`) or `|`-separated (`a.jpg|b.jpg`); object fields (attributes, options) are JSON objects;
an empty cell means "absent". JSONL/Parquet give typed values; a string in a list field is split the same way.
Leniency, on purpose: integer ids and numeric attribute values become strings (numeric SKUs are common).

The table readers here (`read_jsonl_rows`, `read_csv_rows`, `csv_header`, `parse_list`) are shared with the
matching and implicitave loaders. Line numbers are 1-based; in CSV the header is line 1.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_prep.errors import DataPrepError
from data_prep.schema import KNOWN_FIELDS
from data_prep.sources import Loaded, Row, where

if TYPE_CHECKING:
    from data_prep.sources import ConvertContext

TABLE_SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
LIST_SEP = "|"
MAX_CELL_CHARS = 16 * 2**20
LIST_FIELDS = ("images", "queries")
OBJECT_FIELDS = ("attributes", "options")
SPLIT_KEY = "split"
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by errors="surrogateescape"
_NOT_UTF8 = "not valid UTF-8 text; re-save the file as UTF-8"


class CellError(ValueError):
    """A cell that cannot become its field; the message names the field."""


# ---------------------------------------------------------------- table readers (shared)


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def read_jsonl_rows(path: Path, ctx: ConvertContext) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, object) per non-blank line; undecodable, non-JSON or non-object lines go to `ctx.bad`."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                ctx.bad(f"{path}:{lineno}: {_NOT_UTF8} (byte {err.start} of the line)")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                ctx.bad(f"{path}:{lineno}: invalid JSON: {err.msg} (column {err.colno})")
                continue
            if not isinstance(obj, dict):
                ctx.bad(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, obj


def _open_text(path: Path):
    # Long HTML descriptions exceed csv's default 128 KiB cell limit; raise it (process-wide, only upward).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
    # surrogateescape keeps going past bad bytes so each bad row can be reported (or skipped) by its line.
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def csv_header(path: Path, delimiter: str = ",") -> list[str]:
    """The header row of a CSV/TSV file; an empty file or a non-UTF-8 header is a `DataPrepError`."""
    with _open_text(path) as fh:
        try:
            header = next(csv.reader(fh, delimiter=delimiter))
        except StopIteration:
            raise DataPrepError(f"{path}: empty dataset (the file is empty; expected a header row)") from None
        except csv.Error as err:
            raise DataPrepError(f"{path}:1: malformed header ({err})") from None
    if any(_SURROGATE.search(h) for h in header):
        raise DataPrepError(f"{path}:1: header is {_NOT_UTF8}")
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataPrepError(f"{path}:1: duplicate column name(s) {dupes}")
    return header


def require_columns(path: Path, header: list[str], columns: list[str], hint: str = "") -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in header]
    if missing:
        raise DataPrepError(f"{path}: missing column(s) {missing}; the header has {header}{hint}")


def read_csv_rows(
    path: Path, ctx: ConvertContext, *, delimiter: str = ",", required: tuple[str, ...] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line where the row starts, {column: cell}); checks `required` columns first (a `DataPrepError`)."""
    header = csv_header(path, delimiter)
    require_columns(path, header, list(required))
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader)
        prev = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise DataPrepError(f"{path}:{reader.line_num}: malformed {delimiter!r}-separated row ({err})") from None
            start, prev = prev + 1, reader.line_num  # a quoted cell may span lines: report where the row starts
            if not any(cell.strip() for cell in row):
                continue
            if any(_SURROGATE.search(cell) for cell in row):
                ctx.bad(f"{path}:{start}: {_NOT_UTF8}")
                continue
            if len(row) != len(header):
                ctx.bad(f"{path}:{start}: {len(row)} cells but the header has {len(header)} columns")
                continue
            yield start, dict(zip(header, row, strict=True))


def read_parquet_rows(path: Path) -> tuple[list[str], int, Iterator[tuple[int, dict[str, Any]]]]:
    """(column names, row count, iterator of (1-based row number, row dict)) of a Parquet file."""
    import pyarrow.parquet as pq  # optional until used; installed with `datasets`

    try:
        pfile = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataPrepError(f"{path}: not a readable Parquet file ({err})") from None

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        number = 0
        for batch in pfile.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                number += 1
                yield number, record

    return list(pfile.schema_arrow.names), pfile.metadata.num_rows, rows()


def parse_list(value: Any, field: str) -> list[str]:
    """A list field from a cell: JSON list, `|`-separated string, or a list already."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise CellError(f"field '{field}': not a valid JSON list ({err.msg})") from None
        else:
            return [part.strip() for part in text.split(LIST_SEP) if part.strip()]
    if not isinstance(value, list):
        raise CellError(f"field '{field}': expected a list (JSON list or '{LIST_SEP}'-separated), got {value!r:.60}")
    return value


def parse_object(value: Any, field: str) -> dict[str, Any]:
    """An object field from a cell: JSON object text, a dict, or Parquet's map type (list of pairs)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise CellError(f"field '{field}': not a valid JSON object ({err.msg})") from None
    if isinstance(value, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        value = dict(value)
    if not isinstance(value, dict):
        raise CellError(f"field '{field}': expected a JSON object, got {value!r:.60}")
    return {k: v for k, v in value.items() if v is not None}


def _attribute_value(value: Any) -> Any:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _coerce(field: str, value: Any) -> Any:
    if field in LIST_FIELDS:
        return parse_list(value, field)
    if field in OBJECT_FIELDS:
        obj = parse_object(value, field)
        return {k: _attribute_value(v) for k, v in obj.items()} if field == "attributes" else obj
    if field in ("id", "group_id") and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) and field in ("id", "title", "category", "group_id") else value


# ---------------------------------------------------------------- the catalog loader


def find_table(path: Path) -> Path:
    if path.is_file():
        if path.suffix.lower() not in TABLE_SUFFIXES:
            raise DataPrepError(f"{path}: unsupported table type; use one of {sorted(TABLE_SUFFIXES)}")
        return path
    tables = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
    if len(tables) != 1:
        found = [p.name for p in tables] or "none"
        raise DataPrepError(
            f"{path}: expected exactly one table ({', '.join(sorted(TABLE_SUFFIXES))}) in the folder, found {found}; "
            "pass the table file as --input"
        )
    return tables[0]


def build_record(row: dict[str, Any], columns: dict[str, str], loc: str) -> tuple[dict[str, Any], str | None]:
    """Schema record + split name from one table row; raises `CellError` with the location."""
    record: dict[str, Any] = {}
    split = None
    for key, column in columns.items():
        value = row.get(column)
        if _absent(value):
            continue
        try:
            if key == SPLIT_KEY:
                split = str(value).strip()
                if not _SPLIT_NAME.match(split):
                    raise CellError(f"column '{column}': split name {split!r} must be letters, digits, '_', '-', '.'")
            elif key.startswith("attributes."):
                record.setdefault("attributes", {})[key.split(".", 1)[1]] = _attribute_value(value)
            else:
                record[key] = _coerce(key, value)
        except CellError as err:
            raise CellError(f"{loc}: {err}") from None
    return record, split


def load(ctx: ConvertContext) -> Loaded:
    ctx.check_mapping([*KNOWN_FIELDS, SPLIT_KEY])
    table = find_table(ctx.input)
    kind = TABLE_SUFFIXES[table.suffix.lower()]
    # Output key -> source column; a field is read from its own name unless mapped.
    columns = {field: ctx.mapping.get(field, field) for field in (*KNOWN_FIELDS, SPLIT_KEY)}
    columns.update({k: v for k, v in ctx.mapping.items() if k.startswith("attributes.")})
    required = [columns[f] for f in ("id", "title", "category")]
    hint = " (name yours with --map FIELD=COLUMN, e.g. --map title=product_name)"

    if kind == "parquet":
        header, total, raw_rows = read_parquet_rows(table)
        require_columns(table, header, required + list(ctx.mapping.values()), hint)
    elif kind in ("csv", "tsv"):
        delimiter = "\t" if kind == "tsv" else ","
        header = csv_header(table, delimiter)
        require_columns(table, header, required + list(ctx.mapping.values()), hint)
        total = max(count_lines(table) - 1, 0)
        raw_rows = read_csv_rows(table, ctx, delimiter=delimiter)
    else:
        header, total, raw_rows = None, count_lines(table), read_jsonl_rows(table, ctx)

    def rows() -> Iterator[Row]:
        for line, raw in raw_rows:
            loc = where(table, line, raw.get(columns["id"]))
            if header is None:  # JSONL has no header: check the required columns per object
                missing = [c for c in required if c not in raw]
                if missing:
                    ctx.bad(f"{loc}: missing column(s) {missing}{hint}")
                    continue
            try:
                record, split = build_record(raw, columns, loc)
            except CellError as err:
                ctx.bad(str(err))
                continue
            yield Row(table, line, record, (split,) if split else (), image_dir=table.parent)

    return Loaded(rows(), [table], total, {"table": table.name})
