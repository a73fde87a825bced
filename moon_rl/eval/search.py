"""Exact top-k search by dot product (cosine for normalised embeddings): `chunked_topk(queries, corpus, k)`.

Two backends give the same ranking (ties aside; `benchmarks/search_speed.py` checks it on 1M x 256):
- `"faiss"`: `faiss.knn(..., METRIC_INNER_PRODUCT)`, the exact kernel behind `faiss.IndexFlatIP.search`
  (blocked BLAS plus a heap per query), called on the arrays directly so the corpus is not copied into an
  index. Optional: `pip install 'moon-rl[faiss]'` (faiss-cpu).
- `"torch"`: blocks of `query_chunk x chunk_size` scores (one BLAS matmul each, into a reused buffer) folded
  into a running top-k (`_fold_block`): a max per tile of 128 columns, then only rows whose best tile beats
  their current k-th best, and in them only their k best tiles, are sorted. After the first few chunks most
  of the corpus costs a matmul and one max pass; the matmul is ~3/4 of the time (torch.profiler, 1 thread).
  Peak extra memory: the score block (default 1024 x 8192 x 4 bytes = 32 MiB) plus O(Q x k).
`backend="auto"` (the default) takes faiss when `import faiss` works, else torch; each call logs which ran.
Both use torch's intra-op thread count (`torch.get_num_threads()`; faiss's own OpenMP pool is set to it for
the call), so a caller's `torch.set_num_threads` / `OMP_NUM_THREADS` governs both.
Neither normalises: pass normalised embeddings (as `moon_rl.load(...).encode` returns them) for cosine.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import torch

logger = logging.getLogger(__name__)

DEFAULT_CHUNK = 8192
DEFAULT_QUERY_CHUNK = 1024
BACKENDS = ("auto", "faiss", "torch")
TILE = 128  # columns per tile in `_fold_block`


def block_view(buffer: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A contiguous (rows, cols) view of the front of `buffer` (a reused score block; the last chunks are smaller)."""
    return buffer.view(-1)[: rows * cols].view(rows, cols)


def blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@functools.cache
def _faiss():
    """The faiss module, or None when it is not installed (looked up once)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_available() -> bool:
    return _faiss() is not None


def resolve_backend(backend: str = "auto", device: torch.device | str = "cpu") -> str:
    """"auto" -> "faiss" when importable and the tensors are on CPU, else "torch"; "faiss" without faiss
    installed is an error."""
    if backend not in BACKENDS:
        raise ValueError(f"search backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "faiss" if faiss_available() and torch.device(device).type == "cpu" else "torch"
    if backend == "faiss" and not faiss_available():
        raise ImportError("search backend 'faiss' needs faiss: pip install faiss-cpu (or moon-rl[faiss])")
    return backend


def _fold_block(run_s: torch.Tensor, run_i: torch.Tensor, scores: torch.Tensor, offset: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge one (B, C) score block, whose column 0 is corpus row `offset`, into the running top-k (B, <= k).

    One pass takes the maximum of every tile (TILE consecutive columns) of the block. Only rows whose best
    tile beats their current k-th best are touched (after the first chunks, few), and in those only the k
    tiles with the largest maxima are sorted (they hold the row's top-k): k * TILE columns, not C.
    """
    b, c = scores.shape
    tiled = scores.is_contiguous() and c % TILE == 0 and k * TILE < c
    tile_max = scores.view(b, c // TILE, TILE).amax(dim=2) if tiled else None  # (B, C/TILE)
    filling = run_s.size(1) < k  # fewer than k items seen yet: every row takes the block
    if filling:
        rows = torch.arange(b, device=scores.device)
    else:
        row_max = tile_max.amax(dim=1) if tiled else scores.amax(dim=1)
        rows = (row_max > run_s[:, -1]).nonzero().squeeze(1)  # rows where the block enters the top-k
        if rows.numel() == 0:
            return run_s, run_i
    if tiled:
        best = tile_max.index_select(0, rows).topk(k, dim=1).indices  # (R, k) tiles
        cand = scores.view(b, c // TILE, TILE)[rows[:, None], best].view(-1, k * TILE)  # (R, k * TILE)
        top_s, pos = cand.topk(k, dim=1)
        top_i = best.gather(1, pos // TILE) * TILE + pos % TILE  # column in the block
    else:
        top_s, top_i = scores.index_select(0, rows).topk(min(k, c), dim=1)  # (R, <= k)
    cand_s = torch.cat([run_s.index_select(0, rows), top_s], dim=1)  # (R, <= 2k)
    cand_i = torch.cat([run_i.index_select(0, rows), top_i + offset], dim=1)
    keep_s, pos = cand_s.topk(min(k, cand_s.size(1)), dim=1)
    if filling:
        return keep_s, cand_i.gather(1, pos)
    run_s[rows], run_i[rows] = keep_s, cand_i.gather(1, pos)
    return run_s, run_i


def _torch_topk(queries: torch.Tensor, corpus: torch.Tensor, k: int, chunk_size: int, query_chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = corpus.size(0)
    device = queries.device
    all_scores = torch.empty(queries.size(0), k, device=device)
    all_index = torch.empty(queries.size(0), k, dtype=torch.long, device=device)
    buffer = torch.empty(min(query_chunk, queries.size(0)), min(chunk_size, n), device=device)  # reused: no 32 MiB allocation per block
    for qs in blocks(queries.size(0), query_chunk):
        q = queries[qs]
        run_s, run_i = torch.empty(q.size(0), 0, device=device), torch.empty(q.size(0), 0, dtype=torch.long, device=device)
        for cs in blocks(n, chunk_size):
            scores = torch.mm(q, corpus[cs].T, out=block_view(buffer, q.size(0), cs.stop - cs.start))  # (q_chunk, c_chunk)
            run_s, run_i = _fold_block(run_s, run_i, scores, cs.start, k)
        all_scores[qs], all_index[qs] = run_s, run_i
    return all_scores, all_index


def _faiss_topk(queries: torch.Tensor, corpus: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    faiss = _faiss()
    q = queries.detach().cpu().contiguous().numpy()  # float32, shares memory with CPU tensors already contiguous
    c = corpus.detach().cpu().contiguous().numpy()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        scores, index = faiss.knn(q, c, k, metric=faiss.METRIC_INNER_PRODUCT)
    finally:
        faiss.omp_set_num_threads(threads)
    return torch.from_numpy(scores).to(queries.device), torch.from_numpy(index).to(queries.device)


@torch.no_grad()
def chunked_topk(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    k: int,
    chunk_size: int = DEFAULT_CHUNK,
    query_chunk: int = DEFAULT_QUERY_CHUNK,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, D), (N, D) -> scores (Q, k') and corpus indices (Q, k'), best first, k' = min(k, N).

    Exact search by dot product; `backend` "auto" | "faiss" | "torch" (module docstring). `chunk_size` and
    `query_chunk` shape the torch backend's score blocks. Ties come back in unspecified order.
    """
    name = resolve_backend(backend, queries.device)
    k = min(k, corpus.size(0))
    queries, corpus = queries.float(), corpus.float()
    if k == 0 or queries.size(0) == 0:
        return torch.empty(queries.size(0), k), torch.empty(queries.size(0), k, dtype=torch.long)
    if queries.size(1) != corpus.size(1):
        raise ValueError(f"queries have {queries.size(1)} dimensions, the corpus {corpus.size(1)}")
    logger.info("exact top-%d search, backend %s: %d queries x %d corpus rows, %d threads", k, name, queries.size(0), corpus.size(0), torch.get_num_threads())
    if name == "faiss":
        return _faiss_topk(queries, corpus, k)
    return _torch_topk(queries, corpus, k, chunk_size, query_chunk)
