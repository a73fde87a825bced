"""`--source matching`: two offer tables plus labelled pairs (Magellan / DeepMatcher layout) as a retrieval task.

    moon-rl data prepare --source matching \
        --input /work/shared/data/real/product_matching/abt-buy --out data/abt-buy

Input folder: tableA.csv and tableB.csv (an `id` column, a title column named `title` or `name`, optional
`description`, `category` and other columns) and labelled pairs train.csv / valid.csv / test.csv
(`ltable_id, rtable_id, label`; at least one file). `--map title=COL`, `description=COL`, `category=COL` pick
other columns; `--map group_id=COL` also merges offers sharing a value of COL (e.g. a trusted cluster id).

Output records: ids "A-<id>" and "B-<id>"; category from the category column, else "Unknown"; every other
non-empty column except `cluster_id` and `page_url` becomes an attribute (brand, modelno, price, ...).
group_id: connected components of the positive pairs of all pair files (union-find), named by their smallest
member id; offers in no positive pair are groups of one.

Why the tables' `cluster_id` is not used by default: in wdc-block-small it contradicts the labels (3,286 of the
6,454 positive train pairs join offers with different cluster ids, and cluster 2432 lumps unrelated offers).

Splits, so that eval can do query -> product retrieval (a hit shares the query's group_id):
    splits/query.txt   A ids in positive test pairs (the queries)
    splits/corpus.txt  all B ids (the collection searched)
    splits/test.txt    every record in a test pair
    splits/train.txt, splits/valid.txt  records in train / valid pairs, minus every record whose group has a
                       positive test pair: the pair files share records (in abt-buy 1,324 of the 1,437 test
                       records also occur in train pairs), and training on group_id would otherwise see the
                       test matches. catalog.json counts the records left out this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from data_prep.catalog_source import csv_header, read_csv_rows, require_columns
from data_prep.errors import DataPrepError
from data_prep.sources import Loaded, Row, where

if TYPE_CHECKING:
    from data_prep.sources import ConvertContext

TABLES = {"A": "tableA.csv", "B": "tableB.csv"}
PAIR_SPLITS = ("train", "valid", "test")
PAIR_COLUMNS = ("ltable_id", "rtable_id", "label")
TITLE_COLUMNS = ("title", "name")
SKIPPED_COLUMNS = frozenset({"id", "cluster_id", "page_url"})
UNKNOWN_CATEGORY = "Unknown"


class UnionFind:
    """Groups of record ids joined by positive pairs; `root(x)` is the smallest id of x's group."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def root(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]  # path halving
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            # the smaller id becomes the root, so group names do not depend on pair order
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def _columns(path: Path, header: list[str], mapping: dict[str, str]) -> dict[str, str | None]:
    title = mapping.get("title") or next((c for c in TITLE_COLUMNS if c in header), None)
    require_columns(path, header, ["id", title or "title"], " (name the title column with --map title=COLUMN)")
    cols = {"title": title, "description": mapping.get("description", "description"),
            "category": mapping.get("category", "category"), "group_id": mapping.get("group_id")}
    require_columns(path, header, [mapping[k] for k in ("description", "category", "group_id") if k in mapping])
    return {k: (v if v in header else None) for k, v in cols.items()}


def load(ctx: ConvertContext) -> Loaded:
    ctx.check_mapping(["title", "description", "category", "group_id"])
    folder = ctx.input
    if not folder.is_dir():
        raise DataPrepError(f"{folder}: --source matching expects a folder with {sorted(TABLES.values())} and pair files")
    paths = {side: folder / name for side, name in TABLES.items()}
    pair_paths = {split: folder / f"{split}.csv" for split in PAIR_SPLITS if (folder / f"{split}.csv").is_file()}
    for path in paths.values():
        if not path.is_file():
            raise DataPrepError(f"{path}: missing table; --source matching expects tableA.csv and tableB.csv")
    if not pair_paths:
        raise DataPrepError(f"{folder}: no labelled pairs; expected one of {[f'{s}.csv' for s in PAIR_SPLITS]}")

    # Tables first (pairs must name existing rows), kept as (line, row) so errors point into the table files.
    tables: dict[str, dict[str, tuple[int, dict[str, str]]]] = {}
    columns = {}
    for side, path in paths.items():
        columns[side] = _columns(path, csv_header(path), ctx.mapping)
        tables[side] = {}
        for line, row in read_csv_rows(path, ctx):
            key = row["id"].strip()
            if key in tables[side]:
                first = tables[side][key][0]
                ctx.bad(f"{where(path, line, key)}: field 'id': duplicate id, first seen at {path}:{first}")
                continue
            tables[side][key] = (line, row)

    groups = UnionFind()
    members: dict[str, set[str]] = {split: set() for split in pair_paths}
    negatives: list[tuple[str, str]] = []
    test_positives: list[tuple[str, str]] = []
    for split, path in pair_paths.items():
        for line, pair in read_csv_rows(path, ctx, required=PAIR_COLUMNS):
            left, right, label = pair["ltable_id"].strip(), pair["rtable_id"].strip(), pair["label"].strip()
            if left not in tables["A"] or right not in tables["B"]:
                field, value, table = ("ltable_id", left, "A") if left not in tables["A"] else ("rtable_id", right, "B")
                ctx.bad(f"{where(path, line)}: field '{field}': no row with id {value!r} in {TABLES[table]}")
                continue
            if label not in ("0", "1"):
                ctx.bad(f"{where(path, line)}: field 'label': expected 0 or 1, got {label!r}")
                continue
            a, b = f"A-{left}", f"B-{right}"
            members[split].update((a, b))
            if label == "1":
                groups.union(a, b)
                if split == "test":
                    test_positives.append((a, b))
            else:
                negatives.append((a, b))
    if columns["A"]["group_id"]:  # opt-in: offers sharing the mapped column's value are one product
        seeds: dict[str, str] = {}
        for side in TABLES:
            for key, (_, row) in tables[side].items():
                value = row.get(columns[side]["group_id"] or "", "").strip()
                if value:
                    groups.union(f"{side}-{key}", seeds.setdefault(value, f"{side}-{key}"))

    test_groups = {groups.root(a) for a, _ in test_positives}
    query_ids = {a for a, _ in test_positives}
    held_out = {s: {r for r in ids if groups.root(r) in test_groups} for s, ids in members.items() if s != "test"}
    meta = {
        "task": "retrieval: query with splits/query.txt (table A), search splits/corpus.txt (table B)",
        "hit": "same group_id (connected components of positive pairs)",
        "left_out_of_train_for_test_groups": {s: len(ids) for s, ids in held_out.items()},
        "negative_pairs_inside_a_group": sum(groups.root(a) == groups.root(b) for a, b in negatives),
    }

    def rows() -> Iterator[Row]:
        for side, path in paths.items():
            cols = columns[side]
            for key, (line, row) in tables[side].items():
                rid = f"{side}-{key}"
                record = {
                    "id": rid,
                    "title": row[cols["title"]].strip(),
                    "category": (row.get(cols["category"] or "") or "").strip() or UNKNOWN_CATEGORY,
                    "group_id": groups.root(rid),
                    "attributes": {
                        name: value.strip()
                        for name, value in row.items()
                        if value.strip() and name not in SKIPPED_COLUMNS and name not in cols.values()
                    },
                }
                if cols["description"] and row[cols["description"]].strip():
                    record["description"] = row[cols["description"]].strip()
                splits = [s for s in members if rid in members[s] and rid not in held_out.get(s, ())]
                if rid in query_ids:
                    splits.append("query")
                if side == "B":
                    splits.append("corpus")
                yield Row(path, line, record, tuple(splits))

    total = sum(len(t) for t in tables.values())
    return Loaded(rows(), [*paths.values(), *pair_paths.values()], total, meta)
