"""The on-disk index `moon-rl embed` writes and `moon-rl search` reads: Parquet shards plus a manifest.

    OUT/moon_rl_index.json        the manifest: model and its fingerprint, pooling, whether the vectors were read after
                                  the model's reasoning, dimension, count, shard plan, the command, complete or not
    OUT/shards/part-00000.parquet columns id (string), vector (fixed-size list of float32), text (what was embedded),
                                  reasoning (the model's reasoning before the vector, "" without)
    OUT/skipped.jsonl             records that could not be embedded (--on-error skip), with why
    OUT/reasoning/                the reasoning cache of a reasoning embedding (`moon_rl.reasoning_cache`)

A shard is written to a temporary name and renamed into place, so a shard file on disk is always whole: a kill at
any instant loses at most the shard being written, which the next run writes again. The shards are plain Parquet:
`pyarrow.parquet.read_table(OUT / "shards")`, `pandas.read_parquet`, LanceDB, DuckDB read them as they are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from moon_rl.errors import MoonError

MANIFEST = "moon_rl_index.json"
SHARDS = "shards"
SKIPPED = "skipped.jsonl"
FORMAT = "moon-rl-index/1"


def shard_path(out: Path, i: int) -> Path:
    return out / SHARDS / f"part-{i:05d}.parquet"


def write_shard(path: Path, ids: list[str], vectors: np.ndarray, texts: list[str], reasonings: list[str]) -> None:
    """One shard, whole or not at all (temporary file + rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.table({
        "id": pa.array(ids, type=pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        "text": pa.array(texts, type=pa.string()),
        "reasoning": pa.array(reasonings, type=pa.string()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MoonError(f"{path}: not valid JSON ({err}); delete the folder and embed again") from None
    if manifest.get("format") != FORMAT:
        raise MoonError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}; embed into a new folder")
    return manifest


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / MANIFEST)


class Index:
    """A finished index in memory: ids, (N, D) float32 vectors (as stored: L2-normalised by `encode`), texts, manifest."""

    def __init__(self, folder: str | Path):
        import pyarrow.parquet as pq

        self.folder = Path(folder).expanduser()
        manifest = read_manifest(self.folder)
        if manifest is None:
            raise MoonError(f"--index {self.folder}: no {MANIFEST}; make one with `moon-rl embed --out {self.folder}`")
        if not manifest.get("complete"):
            raise MoonError(f"--index {self.folder}: embedding did not finish; run the same `moon-rl embed` command again to complete it")
        self.manifest = manifest
        ids: list[str] = []
        texts: list[str] = []
        reasonings: list[str] = []
        blocks = []
        for i in range(manifest["shards"]):
            path = shard_path(self.folder, i)
            if not path.is_file():
                raise MoonError(f"--index {self.folder}: shard {path.name} is missing; run the `moon-rl embed` command again")
            table = pq.read_table(path)
            ids += table.column("id").to_pylist()
            texts += table.column("text").to_pylist()
            reasonings += table.column("reasoning").to_pylist()
            vec = table.column("vector").combine_chunks()
            blocks.append(vec.values.to_numpy(zero_copy_only=False).reshape(len(vec), manifest["dimension"]))
        self.ids, self.texts, self.reasonings = ids, texts, reasonings
        self.vectors = np.concatenate(blocks) if blocks else np.zeros((0, manifest["dimension"]), dtype=np.float32)
        self.position = {pid: i for i, pid in enumerate(ids)}
