"""`--source ae110k` and `--source oamine`: product titles with attribute-value labels (ExtractGPT layout).

    moon-rl data prepare --source ae110k \
        --input /work/shared/data/real/ae110k_oamine/data/processed_datasets/ae-110k --out data/ae110k

Input: a dataset folder holding train.jsonl and/or test.jsonl (train_0.2.jsonl, a subsample of train, is not
read), or one such JSONL file (its stem becomes the split name). Each line:

    {"input": "<title>", "category": "Lure", "target_scores": {"Brand Name": {"SEAPESCA": 1}, "Weight": {"n/a": 1}}}

Output record: id "<split>-<line>" (stable across runs), title = input, category = the category field as is
(one level; the dataset name goes into catalog.json rather than the path, so a category reward gives no free
credit for a constant root), group_id = id (no two lines are the same product), attributes = per attribute
name the value with the top score, "n/a" values skipped (test.jsonl marks absent attributes with them; the
schema has no slot for "absent", so those attributes are left out). Ties keep the first value listed.

catalog.json gets `category_attributes`: per category, every attribute name the train split labels for it ("n/a"
ones included), in first-seen order: the category's schema, which ExtractGPT's prompts list. A prompt then asks for
all of them (`data_prep.formats.prompt_text`), so an attribute a title does not state is a negative the model must
leave out: answering it counts against precision (`reward_fns.attributes.attribute_matches`), as "n/a" negatives
count in ExtractGPT's scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_prep.catalog_source import count_lines, read_jsonl_rows
from data_prep.errors import DataPrepError
from data_prep.sources import Loaded, Row, where

if TYPE_CHECKING:
    from data_prep.sources import ConvertContext

SPLIT_FILES = ("train", "test")
NA_VALUES = frozenset({"n/a", ""})  # only the marker the datasets use: "None" can be a real value
DATASET_NAMES = {"ae110k": "AE-110K", "oamine": "OA-Mine"}


def top_attributes(target_scores: Any) -> dict[str, str]:
    """{attribute: {value: score}} -> {attribute: best value}, skipping "n/a"; `ValueError` on a wrong shape.

    >>> top_attributes({"Brand": {"Acme": 1}, "Weight": {"n/a": 1}, "Size": {"S": 0.4, "M": 0.9}})
    {'Brand': 'Acme', 'Size': 'M'}
    """
    if not isinstance(target_scores, dict):
        raise ValueError(f"expected an object {{attribute: {{value: score}}}}, got {target_scores!r:.60}")
    attributes = {}
    for name, scores in target_scores.items():
        if not isinstance(scores, dict) or not all(
            isinstance(s, Real) and not isinstance(s, bool) for s in scores.values()
        ):
            raise ValueError(f"attribute {name!r}: expected {{value: numeric score}}, got {scores!r:.60}")
        candidates = {v.strip(): s for v, s in scores.items() if v.strip().lower() not in NA_VALUES}
        if name.strip() and candidates:
            attributes[name.strip()] = max(candidates, key=candidates.__getitem__)  # first max wins
    return attributes


def category_attributes(rows: Iterator[dict[str, Any]]) -> dict[str, list[str]]:
    """{category: attribute names labelled for it (values "n/a" included), first seen first}; bad rows are skipped
    (the main pass reports them).

    >>> category_attributes(iter([{"category": "Lure", "target_scores": {"Brand": {"A": 1}, "Weight": {"n/a": 1}}},
    ...                           {"category": "Lure", "target_scores": {"Length": {"5cm": 1}, "Brand": {"B": 1}}}]))
    {'Lure': ['Brand', 'Weight', 'Length']}
    """
    names: dict[str, dict[str, None]] = {}
    for raw in rows:
        category, scores = raw.get("category"), raw.get("target_scores")
        if isinstance(category, str) and isinstance(scores, dict):
            seen = names.setdefault(category, {})
            seen.update((str(n).strip(), None) for n in scores if str(n).strip())
    return {category: list(seen) for category, seen in names.items()}


def _schema_rows(files: list[Path]) -> Iterator[dict[str, Any]]:
    """The rows the schema is read from: the train file's when there is one (test labels must not shape the
    prompt), else every file's."""
    import json

    train = [f for f in files if f.stem == "train"] or files
    for path in train:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    yield obj


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = [path / f"{split}.jsonl" for split in SPLIT_FILES if (path / f"{split}.jsonl").is_file()]
    if not files:
        found = sorted(p.name for p in path.glob("*.jsonl")) or "none"
        raise DataPrepError(f"{path}: expected {[f'{s}.jsonl' for s in SPLIT_FILES]} in the folder, found {found}")
    return files


def load(ctx: ConvertContext) -> Loaded:
    ctx.check_mapping([])
    files = _files(ctx.input)

    def rows() -> Iterator[Row]:
        for path in files:
            split = path.stem
            for line, raw in read_jsonl_rows(path, ctx):
                record_id = f"{split}-{line}"
                loc = where(path, line, record_id)
                title = raw.get("input")
                if not isinstance(title, str) or not title.strip():
                    ctx.bad(f"{loc}: field 'input': expected the product title (non-empty text), got {title!r:.60}")
                    continue
                try:
                    attributes = top_attributes(raw.get("target_scores"))
                except ValueError as err:
                    ctx.bad(f"{loc}: field 'target_scores': {err}")
                    continue
                category = raw.get("category")
                record = {"id": record_id, "title": title.strip(), "category": category, "attributes": attributes}
                yield Row(path, line, record, (split,))

    meta = {
        "dataset": DATASET_NAMES[ctx.source],
        "files": [p.name for p in files],
        "category_attributes": category_attributes(_schema_rows(files)),
    }
    return Loaded(rows(), files, sum(count_lines(p) for p in files), meta)
