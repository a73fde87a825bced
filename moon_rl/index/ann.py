"""An approximate index over an index's vectors, for catalogs where exact search is too slow (faiss, inner product).

    moon-rl search --index DIR --build-ann ivf           # DIR/ann.faiss + its recall@10 against exact, in the manifest
    moon-rl search --index DIR --query "..." --ann       # top-k through it (exact search stays the default)

Kinds: `ivf` (IVF-Flat: k-means cells, `nprobe` of them scanned a query; cells = 4 sqrt(N)) and `hnsw` (HNSW-Flat,
M = 32). The file is faiss's own binary format (`faiss.write_index`), not a pickle. When it is built, its recall@10
against exact search and its query time against exact's are measured on `n_check` of the index's own vectors as
queries (seeded), and stored beside it: a reader sees what the speed costs before trusting it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from moon_rl.errors import MissingExtraError, MoonError

KINDS = ("ivf", "hnsw")
ANN_FILE = "ann.faiss"
ANN_INFO = "ann.json"


def require_faiss():
    try:
        import faiss
    except ImportError:
        raise MissingExtraError("an approximate index", "faiss", "the `faiss-cpu` package is not installed") from None
    return faiss


@dataclasses.dataclass(frozen=True)
class AnnParams:
    kind: str = "ivf"
    nlist: int | None = None  # ivf cells; None: 4 sqrt(N)
    nprobe: int = 32  # ivf cells scanned a query
    m: int = 32  # hnsw links a node
    ef_search: int = 128  # hnsw candidates kept while searching
    ef_construction: int = 80
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MoonError(f"--build-ann {self.kind!r}: choose one of {', '.join(KINDS)}")


def build(vectors: np.ndarray, params: AnnParams):
    """A faiss index over `vectors` (N, D) float32, inner product."""
    faiss = require_faiss()
    n, d = vectors.shape
    if params.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.add(vectors)
        index.hnsw.efSearch = params.ef_search
        return index
    nlist = params.nlist or max(1, min(n // 39, int(4 * np.sqrt(n))))  # faiss wants >= 39 training points a cell
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = params.seed
    rng = np.random.default_rng(params.seed)
    train = vectors if n <= 256 * nlist else vectors[rng.choice(n, 256 * nlist, replace=False)]
    index.train(train)
    index.add(vectors)
    index.nprobe = min(params.nprobe, nlist)
    return index


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k found in its approximate top-k.

    >>> recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 2, 9]]))
    0.6666666666666666
    """
    k = exact.shape[1]
    return float(np.mean([len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact)]))


def check(index, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    """recall@k of `index` against exact search (faiss.knn, the exact kernel moon-rl's search uses) and the time ratio."""
    faiss = require_faiss()
    t0 = time.perf_counter()
    _, exact = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, approx = index.search(queries, k)
    ann_s = time.perf_counter() - t0
    return {f"recall@{k}": recall_at_k(approx, exact), "ann_s": round(ann_s, 4), "exact_s": round(exact_s, 4),
            "time_ratio": round(ann_s / exact_s, 4) if exact_s > 0 else None, "queries": len(queries)}


def build_for_index(folder: str | Path, params: AnnParams, n_check: int = 1000) -> dict:
    """Build the approximate index of a finished `moon-rl embed` folder, measure it, save both; returns the report."""
    from moon_rl.index.store import Index

    faiss = require_faiss()
    idx = Index(folder)
    vectors = np.ascontiguousarray(idx.vectors, dtype=np.float32)
    t0 = time.perf_counter()
    ann = build(vectors, params)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(params.seed)
    queries = vectors[rng.choice(len(vectors), min(n_check, len(vectors)), replace=False)]
    report = {**dataclasses.asdict(params), "build_s": round(build_s, 1), "count": len(vectors), **check(ann, vectors, queries)}
    faiss.write_index(ann, str(idx.folder / ANN_FILE))
    (idx.folder / ANN_INFO).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def load_for_index(folder: Path):
    faiss = require_faiss()
    path = folder / ANN_FILE
    if not path.is_file():
        raise MoonError(f"--ann: {folder} has no approximate index; build one with `moon-rl search --index {folder} --build-ann ivf`")
    ann = faiss.read_index(str(path))
    info = json.loads((folder / ANN_INFO).read_text(encoding="utf-8"))
    if ann.ntotal != info["count"]:
        raise MoonError(f"{path}: holds {ann.ntotal} vectors, the index {info['count']}; build it again (--build-ann)")
    return ann
