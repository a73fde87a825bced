"""A copy of a catalog whose records train on their titles: the same records, ids, groups and splits, with no
description and no `price` attribute.

Why, for the product-matching recipes (benchmarks/pretrained.py, `moon-rl demo`): the embedding reads the offer's
title plus brand / model number (`data_prep.formats.embedding_text`), so a description in the prompt only doubles the
tokens of every SFT row and rollout, and no baseline reads it either; and a price is never in a title, so its trace
line would teach the model to guess prices.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DROPPED_ATTRIBUTES = frozenset({"price"})


def title_catalog(catalog: str | Path, out: str | Path) -> Path:
    """Write the title-only copy of `catalog` into `out` (kept when it is already there); returns `out`."""
    catalog, out = Path(catalog), Path(out)
    if (out / "products.jsonl").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(catalog / "splits", out / "splits", dirs_exist_ok=True)
    shutil.copyfile(catalog / "catalog.json", out / "catalog.json")
    lines = []
    for line in (catalog / "products.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        record["description"] = None
        record["attributes"] = {k: v for k, v in (record.get("attributes") or {}).items() if k not in DROPPED_ATTRIBUTES}
        lines.append(json.dumps(record, ensure_ascii=False))
    # products.jsonl last: its presence marks a finished copy
    tmp = out / "products.jsonl.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out / "products.jsonl")
    return out
