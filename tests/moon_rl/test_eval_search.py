"""Exact top-k search (`moon_rl.eval.search`): the torch fallback against a brute-force topk, faiss against torch."""

import logging

import pytest
import torch
import torch.nn.functional as F

from moon_rl.eval import search
from moon_rl.eval.search import chunked_topk, faiss_available, resolve_backend

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss not installed: pip install faiss-cpu (or moon-rl[faiss])")


def _data(n_q=53, n=997, d=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n_q, d, generator=gen), dim=-1), F.normalize(torch.randn(n, d, generator=gen), dim=-1)


@pytest.mark.parametrize(("chunk_size", "query_chunk"), [(8192, 1024), (64, 16), (7, 5), (3, 53)])
def test_torch_backend_is_the_brute_force_topk(chunk_size, query_chunk):
    queries, corpus = _data()
    want_s, want_i = (queries @ corpus.T).topk(10, dim=1)
    s, i = chunked_topk(queries, corpus, 10, chunk_size=chunk_size, query_chunk=query_chunk, backend="torch")
    assert torch.equal(i, want_i)
    assert torch.allclose(s, want_s, atol=1e-6)


@pytest.mark.parametrize(("k", "chunk_size"), [(10, 2048), (3, 512), (1, 256)])
def test_tiled_path_is_the_brute_force_topk(k, chunk_size):
    # Chunks that are whole tiles (search.TILE columns) with k * TILE < chunk: only the k best tiles are sorted.
    assert chunk_size % search.TILE == 0 and k * search.TILE < chunk_size
    queries, corpus = _data(n_q=40, n=6000, d=8, seed=2)
    want_s, want_i = (queries @ corpus.T).topk(k, dim=1)
    s, i = chunked_topk(queries, corpus, k, chunk_size=chunk_size, query_chunk=16, backend="torch")
    assert torch.equal(i, want_i)
    assert torch.allclose(s, want_s, atol=1e-6)


def test_torch_backend_takes_late_winners_for_some_rows_only():
    # Query 0 scores the corpus in increasing order (its top-3 sit in the last chunk), query 1 in decreasing
    # order (its top-3 sit in the first chunk): a chunk enters one row's running top-k and not the other's.
    corpus = torch.arange(20.0)[:, None] * torch.tensor([[1.0, 0.0]]) + torch.tensor([[0.0, 1.0]]) * torch.arange(20.0).flip(0)[:, None]
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s, i = chunked_topk(queries, corpus, 3, chunk_size=4, backend="torch")
    assert i.tolist() == [[19, 18, 17], [0, 1, 2]]
    assert s.tolist() == [[19.0, 18.0, 17.0], [19.0, 18.0, 17.0]]


def test_k_larger_than_corpus_and_empty_inputs():
    queries, corpus = _data(n_q=4, n=3)
    s, i = chunked_topk(queries, corpus, 10, chunk_size=2, backend="torch")
    assert s.shape == (4, 3) and sorted(i[0].tolist()) == [0, 1, 2]
    assert chunked_topk(queries, corpus[:0], 5, backend="torch")[1].shape == (4, 0)
    with pytest.raises(ValueError, match="dimensions"):
        chunked_topk(queries, torch.zeros(3, 5), 2, backend="torch")


@needs_faiss
def test_faiss_and_torch_give_the_same_top10():
    queries, corpus = _data(n_q=200, n=5000, d=32, seed=1)
    s_t, i_t = chunked_topk(queries, corpus, 10, chunk_size=2048, backend="torch")  # tiled path
    s_f, i_f = chunked_topk(queries, corpus, 10, backend="faiss")
    assert i_f.dtype == torch.long and s_f.dtype == torch.float32
    assert torch.equal(i_f, i_t)  # continuous random vectors: no ties
    assert torch.allclose(s_f, s_t, atol=1e-5)
    assert resolve_backend("auto") == "faiss"


@needs_faiss
def test_faiss_backend_keeps_the_callers_thread_count():
    faiss = search._faiss()
    before = faiss.omp_get_max_threads()
    queries, corpus = _data(n_q=30, n=100)
    chunked_topk(queries, corpus, 5, backend="faiss")
    assert faiss.omp_get_max_threads() == before


def test_without_faiss_auto_is_torch_and_forcing_faiss_says_how_to_install(monkeypatch, caplog):
    monkeypatch.setattr(search, "_faiss", lambda: None)
    assert resolve_backend("auto") == "torch"
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        resolve_backend("faiss")
    with pytest.raises(ValueError, match="auto, faiss, torch"):
        resolve_backend("annoy")
    queries, corpus = _data(n_q=3, n=50)
    with caplog.at_level(logging.INFO, logger="moon_rl.eval.search"):
        _, i = chunked_topk(queries, corpus, 2)
    assert "backend torch" in caplog.text
    assert torch.equal(i, (queries @ corpus.T).topk(2, dim=1).indices)


def test_eval_config_checks_the_search_backend():
    from moon_rl.errors import MoonError
    from moon_rl.eval.run import EvalConfig

    assert EvalConfig(search_backend="torch").search_backend == "torch"
    with pytest.raises(MoonError, match="search_backend: search backend must be one of"):
        EvalConfig(search_backend="annoy")
