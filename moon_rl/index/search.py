"""`moon-rl search`: top-k over an index `moon-rl embed` wrote.

    moon-rl search --index index/abt-buy --query "sony cd player cdpce375" -k 10
    moon-rl search --index index/abt-buy --queries queries.txt --json > hits.json
    moon-rl search --index index/abt-buy --id B-123                      # offers like a stored one (itself left out)

Text queries are embedded by the index's own model, the way the index was (`reasoning` as its manifest says), after a
check that the model's files still have the fingerprint the index was built with. Search is exact by dot product
(cosine: the vectors are L2-normalised) with `moon_rl.eval.search.chunked_topk` (faiss when installed, torch
otherwise), so its ranking is the one `moon-rl eval` scores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moon_rl.errors import MoonError
from moon_rl.index.store import Index


@dataclasses.dataclass
class SearchConfig:
    index: str = ""
    query: str | None = None
    queries: str | None = None  # a text file, one query a line
    id: str | None = None
    k: int = 10
    ann: bool = False  # through the index's approximate index (moon_rl.index.ann) instead of exact search
    batch_size: int = 32
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        given = [name for name in ("query", "queries", "id") if getattr(self, name) is not None]
        if len(given) != 1:
            raise MoonError("give exactly one of --query TEXT, --queries FILE or --id ID")
        if self.k < 1:
            raise MoonError(f"-k must be >= 1, got {self.k}")


def query_texts(cfg: SearchConfig) -> list[str]:
    if cfg.query is not None:
        if not cfg.query.strip():
            raise MoonError("--query is empty")
        return [cfg.query]
    path = Path(cfg.queries).expanduser()
    if not path.is_file():
        raise MoonError(f"--queries {path}: no such file (one query a line)")
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise MoonError(f"--queries {path}: holds no query")
    return texts


def embed_queries(index: Index, texts: list[str], cfg: SearchConfig) -> np.ndarray:
    """The queries through the index's model, as the index was embedded."""
    from moon_rl.inference import load
    from moon_rl.reasoning_cache import model_fingerprint

    m = index.manifest
    if model_fingerprint(m["model"]) != m["model_fingerprint"]:
        raise MoonError(
            f"--index {index.folder}: its model {m['model']} has changed since the index was built (fingerprint "
            f"{m['model_fingerprint']}); embed the catalog again with the current model"
        )
    model = load(m["model"], device=cfg.device)
    return model.encode(texts, batch_size=cfg.batch_size, reasoning=m["reasoning"], progress=cfg.progress and len(texts) > 1, desc="queries").numpy()


def top_k(index: Index, queries: np.ndarray, k: int, exclude: list[int | None] | None = None, ann: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) scores and corpus positions, exact (or through the approximate index with `ann`); `exclude[q]`: a corpus
    position left out of query q's hits."""
    from moon_rl.eval.search import chunked_topk

    extra = 1 if exclude else 0
    kk = min(k + extra, len(index.ids))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if ann:
        from moon_rl.index.ann import load_for_index

        scores, pos = load_for_index(index.folder).search(queries, kk)
    else:
        scores, pos = chunked_topk(torch.from_numpy(queries), torch.from_numpy(index.vectors), kk)
        scores, pos = scores.numpy(), pos.numpy()
    if not exclude:
        return scores[:, :k], pos[:, :k]
    keep_s, keep_p = [], []
    for q, skip in enumerate(exclude):
        mask = pos[q] != skip if skip is not None else np.ones(kk, dtype=bool)
        keep_s.append(scores[q][mask][:k])
        keep_p.append(pos[q][mask][:k])
    return np.stack(keep_s), np.stack(keep_p)


def run_search(cfg: SearchConfig) -> list[dict[str, Any]]:
    """[{"query", "hits": [{"rank", "id", "score", "text"}]}] for each query."""
    index = Index(cfg.index)
    if cfg.id is not None:
        if cfg.id not in index.position:
            raise MoonError(f"--id {cfg.id!r}: not in the index {index.folder} ({len(index.ids)} ids)")
        at = index.position[cfg.id]
        labels, vectors, exclude = [f"id {cfg.id}: {index.texts[at]}"], index.vectors[at : at + 1], [at]
    else:
        labels = query_texts(cfg)
        vectors, exclude = embed_queries(index, labels, cfg), None
    scores, pos = top_k(index, vectors, cfg.k, exclude, ann=cfg.ann)
    return [
        {"query": label, "hits": [{"rank": r + 1, "id": index.ids[p], "score": float(s), "text": index.texts[p]}
                                  for r, (s, p) in enumerate(zip(scores[q], pos[q])) if p >= 0]}
        for q, label in enumerate(labels)
    ]


def format_hits(results: list[dict[str, Any]], width: int = 80) -> str:
    """Each query and its hits as a Markdown table (rank, score, id, text)."""
    blocks = []
    for result in results:
        lines = [f"query: {result['query']}", "", "| rank | score | id | text |", "|---|---|---|---|"]
        for hit in result["hits"]:
            text = hit["text"] if len(hit["text"]) <= width else hit["text"][: width - 3] + "..."
            lines.append(f"| {hit['rank']} | {hit['score']:.4f} | {hit['id']} | {text.replace('|', '/')} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
