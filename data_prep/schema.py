"""The product record schema every moon-rl loader writes and every trainer reads.

A *catalog* is a folder:

    catalog/
      products.jsonl        one product record per line (schema below)
      images/               image files; records refer to them by paths relative to the catalog
      splits/train.txt      product ids, one per line (optional: without splits every record is "train")
      splits/test.txt
      catalog.json          optional metadata: {"name": ..., "source": ..., "attributes": [...]}

A product record (one JSON object per line of products.jsonl):

    id          str, non-empty, unique in the catalog
    title       str, non-empty
    description str or null (optional)
    images      list of str: paths relative to the catalog folder (may be empty for text-only catalogs)
    category    str: a path such as "Clothing > Tops > Shirts" (">" separates levels)
    attributes  object: attribute name -> value (str); e.g. {"colour": "navy", "sleeve": "long"}
    queries     list of str: search queries that led to this product (optional, default [])
    group_id    str: records that share it are the same product / SPU (the contrastive positives);
                defaults to the record's id (a group of one)
    options     object: attribute name -> list of allowed values, for closed-set attributes (optional)
    reasoning   str: a reasoning trace for SFT written by a teacher model (optional; wins over the
                template trace)

Validation names the file, the line, the record id and the field, so a bad record is found in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CATEGORY_SEP = " > "
PRODUCTS_FILE = "products.jsonl"
SPLITS_DIR = "splits"
META_FILE = "catalog.json"

REQUIRED_FIELDS = ("id", "title", "category")
KNOWN_FIELDS = (
    "id",
    "title",
    "description",
    "images",
    "category",
    "attributes",
    "queries",
    "group_id",
    "options",
    "reasoning",
)


class RecordError(ValueError):
    """A record does not match the schema. The message names where and what, and how to fix it."""


@dataclasses.dataclass
class Product:
    id: str
    title: str
    category: str
    description: str | None = None
    images: list[str] = dataclasses.field(default_factory=list)
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    queries: list[str] = dataclasses.field(default_factory=list)
    group_id: str = ""
    options: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    reasoning: str | None = None

    def __post_init__(self) -> None:
        if not self.group_id:
            self.group_id = self.id

    @property
    def category_path(self) -> list[str]:
        return split_category(self.category)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        # Keep the files small and diff-friendly: drop empty optional fields.
        for key in ("description", "options", "reasoning"):
            if not out[key]:
                out.pop(key)
        return out


def split_category(category: str) -> list[str]:
    return [level.strip() for level in category.split(">") if level.strip()]


def _where(source: str | None, index: int, record_id: Any) -> str:
    loc = f"{source}:{index + 1}" if source else f"record {index}"
    return f"{loc} (id={record_id!r})" if record_id not in (None, "") else loc


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def validate_record(raw: Any, index: int, source: str | None = None) -> Product:
    """Check one raw record (a parsed JSON object) and return it as a `Product`.

    `index` is the 0-based position in `source` (a file name); errors report it 1-based, like editors.
    """
    if not isinstance(raw, dict):
        raise RecordError(f"{_where(source, index, None)}: expected a JSON object, got {type(raw).__name__}")
    where = _where(source, index, raw.get("id"))

    def fail(field: str, expected: str) -> RecordError:
        got = raw.get(field, "<missing>")
        shown = repr(got) if len(repr(got)) < 80 else repr(got)[:77] + "..."
        return RecordError(f"{where}: field '{field}': expected {expected}, got {shown}")

    for field in REQUIRED_FIELDS:
        value = raw.get(field)
        if not isinstance(value, str) or not value.strip():
            raise fail(field, "a non-empty string")
    unknown = sorted(set(raw) - set(KNOWN_FIELDS))
    if unknown:
        raise RecordError(
            f"{where}: unknown field(s) {unknown}; valid fields are {list(KNOWN_FIELDS)} "
            "(map your columns with `moon-rl data prepare --source catalog --map FIELD=COLUMN`)"
        )
    if not split_category(raw["category"]):
        raise fail("category", "a category path such as 'Clothing > Tops > Shirts'")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise fail("description", "a string or null")
    images = raw.get("images", [])
    if not _str_list(images) or any(not p.strip() for p in images):
        raise fail("images", "a list of image paths (strings) relative to the catalog")
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip() for k, v in attributes.items()
    ):
        raise fail("attributes", "an object mapping attribute names to non-empty string values")
    queries = raw.get("queries", [])
    if not _str_list(queries):
        raise fail("queries", "a list of strings")
    group_id = raw.get("group_id", raw["id"])
    if not isinstance(group_id, str) or not group_id:
        raise fail("group_id", "a non-empty string")
    options = raw.get("options", {}) or {}
    if not isinstance(options, dict) or not all(isinstance(k, str) and _str_list(v) and v for k, v in options.items()):
        raise fail("options", "an object mapping attribute names to non-empty lists of allowed values")
    for name, allowed in options.items():
        if name in attributes and attributes[name] not in allowed:
            raise RecordError(
                f"{where}: field 'attributes': value {attributes[name]!r} of '{name}' is not among its options {allowed}"
            )
    reasoning = raw.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise fail("reasoning", "a string or null")
    return Product(
        id=raw["id"],
        title=raw["title"],
        category=raw["category"],
        description=description,
        images=list(images),
        attributes=dict(attributes),
        queries=list(queries),
        group_id=group_id,
        options={k: list(v) for k, v in options.items()},
        reasoning=reasoning,
    )


def validate_records(raws: Iterable[Any], source: str | None = None) -> list[Product]:
    """Validate many records; also checks that ids are unique and that there is at least one."""
    products: list[Product] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raws):
        product = validate_record(raw, index, source)
        if product.id in seen:
            raise RecordError(
                f"{_where(source, index, product.id)}: field 'id': duplicate id, first seen at line {seen[product.id] + 1}"
            )
        seen[product.id] = index
        products.append(product)
    if not products:
        raise RecordError(f"{source or 'dataset'}: no records; a catalog needs at least one product")
    return products


def iter_jsonl(path: Path) -> Iterator[Any]:
    """Yield parsed JSON objects of a JSONL file; a bad line raises a `RecordError` naming its line."""
    with open(path, "rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise RecordError(f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise RecordError(f"{path}:{lineno}: invalid JSON: {err.msg} (column {err.colno})") from None


def read_split_ids(catalog_dir: Path, split: str) -> list[str]:
    path = Path(catalog_dir) / SPLITS_DIR / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in (Path(catalog_dir) / SPLITS_DIR).glob("*.txt"))
        raise FileNotFoundError(f"{path}: no split '{split}' in this catalog (available: {available or 'none'})")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_catalog(catalog_dir: str | Path, split: str | None = None) -> list[Product]:
    """Read and validate a catalog folder; with `split`, only the products listed in splits/<split>.txt."""
    catalog_dir = Path(catalog_dir)
    path = catalog_dir / PRODUCTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{catalog_dir}: not a moon-rl catalog (no {PRODUCTS_FILE}); create one with "
            "`moon-rl data synth` or `moon-rl data prepare --source ...`"
        )
    products = validate_records(iter_jsonl(path), source=str(path))
    if split is None:
        return products
    wanted = read_split_ids(catalog_dir, split)
    by_id = {p.id: p for p in products}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise RecordError(f"{catalog_dir / SPLITS_DIR / (split + '.txt')}: ids not in {PRODUCTS_FILE}: {missing[:5]}")
    return [by_id[i] for i in wanted]


def catalog_meta(catalog_dir: str | Path, key: str) -> Any:
    """One entry of the catalog's own metadata (catalog.json), None when the file or the key is missing or the
    file is unreadable: metadata refines prompts and traces (`image_attributes`, `category_attributes`), it is
    never required."""
    path = Path(catalog_dir) / META_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return meta.get(key) if isinstance(meta, dict) else None


def write_catalog(
    catalog_dir: str | Path,
    products: Iterable[Product],
    splits: dict[str, list[str]] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write products.jsonl (+ splits and metadata). Images are the caller's to place under the folder."""
    catalog_dir = Path(catalog_dir)
    catalog_dir.mkdir(parents=True, exist_ok=True)
    tmp = catalog_dir / (PRODUCTS_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for product in products:
            fh.write(json.dumps(product.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(catalog_dir / PRODUCTS_FILE)  # atomic: a crash never leaves half a products.jsonl
    for name, ids in (splits or {}).items():
        (catalog_dir / SPLITS_DIR).mkdir(exist_ok=True)
        (catalog_dir / SPLITS_DIR / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    if meta is not None:
        (catalog_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return catalog_dir
