"""The text baselines a retailer would run instead of moon-rl, as pure functions: texts in, a score matrix out.

    tfidf_scores(["red mug"], ["red mug 350 ml", "blue shirt"])            # (1, 2) cosine of TF-IDF vectors
    tfidf_scores(queries, corpus, analyzer="char")                         # char_wb 2-4-grams
    bm25_scores(queries, corpus)                                           # bm25s, k1=1.5, b=0.75
    sentence_transformer_embeddings("path/to/all-MiniLM-L6-v2", texts)     # (n, D) unit vectors

These are the definitions of benchmarks/pretrained.py's `tfidf_word`, `tfidf_char`, `bm25` and `minilm` rows
(scikit-learn's TfidfVectorizer with sublinear_tf, fitted on the corpus; bm25s with no stop words), so
`moon-rl eval --baseline bm25` and the benchmark report the same number on the same texts. Each record is read
as the text moon-rl's plain embedding path reads (`record_text`: `data_prep.formats.embedding_text`).

The packages are optional (`pip install 'moon-rl[bench]'`); a missing one is a MoonError naming that command.
A lexical score matrix is dense, queries x corpus float32 (200 queries x 22,074 offers: 18 MB).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from moon_rl.errors import MoonError

# --baseline NAME -> (what it is, in the report's words); the scoring is `lexical_scores`.
LEXICAL = {
    "bm25": "BM25 over words (bm25s, k1=1.5, b=0.75)",
    "tfidf": "TF-IDF over words (scikit-learn, sublinear tf, cosine)",
    "tfidf_char": "TF-IDF over char_wb 2-4-grams (scikit-learn, sublinear tf, cosine)",
}
INSTALL = "pip install 'moon-rl[bench]'"


def require(module: str, what: str) -> Any:
    """Import an optional package or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MoonError(f"{what} needs the {module.split('.')[0]} package, which is not installed: {INSTALL}") from None


def record_text(record: Any) -> str:
    """The text a baseline reads: a product's title plus the identifiers it lacks, a query's text (the same
    text moon-rl's plain embedding path embeds, `moon_rl.inference.MoonModel._embed_plain`)."""
    from data_prep.formats import embedding_text
    from data_prep.schema import Product

    if isinstance(record, Product):
        return embedding_text(record.title, record.attributes)
    return embedding_text(record if isinstance(record, str) else (record.text or ""))


def tfidf_scores(queries: Sequence[str], corpus: Sequence[str], analyzer: str = "word") -> np.ndarray:
    """(Q, N) cosine similarity of TF-IDF vectors fitted on the corpus; analyzer "word" or "char" (char_wb 2-4).

    >>> tfidf_scores(["red mug"], ["red mug", "blue shirt"]).round(2).tolist()
    [[1.0, 0.0]]
    """
    text = require("sklearn.feature_extraction.text", f"--baseline {'tfidf_char' if analyzer == 'char' else 'tfidf'}")
    kwargs = {"analyzer": "char_wb", "ngram_range": (2, 4)} if analyzer == "char" else {}
    try:
        vec = text.TfidfVectorizer(sublinear_tf=True, **kwargs).fit(list(corpus))
    except ValueError as err:  # "empty vocabulary": no corpus record has a word
        raise MoonError(f"TF-IDF baseline: {err} (the corpus records have no text to index)") from None
    return (vec.transform(list(queries)) @ vec.transform(list(corpus)).T).toarray().astype(np.float32)


def bm25_scores(queries: Sequence[str], corpus: Sequence[str], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """(Q, N) BM25 scores (bm25s tokenizer, no stop words); a query with no indexable word scores 0 everywhere.

    >>> bm25_scores(["red mug"], ["red mug", "blue shirt"])[0].tolist()[1]
    0.0
    """
    bm25s = require("bm25s", "--baseline bm25")
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(bm25s.tokenize(list(corpus), stopwords=None, show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(list(queries), stopwords=None, return_ids=False, show_progress=False)
    scores = np.zeros((len(tokens), len(corpus)), dtype=np.float32)
    for i, q in enumerate(tokens):
        if q:  # bm25s fails on an empty token list
            scores[i] = retriever.get_scores(q)
    return scores


def lexical_scores(name: str, queries: Sequence[str], corpus: Sequence[str]) -> np.ndarray:
    """The (Q, N) score matrix of the lexical baseline `name` (a key of LEXICAL)."""
    if name == "bm25":
        return bm25_scores(queries, corpus)
    if name in ("tfidf", "tfidf_char"):
        return tfidf_scores(queries, corpus, analyzer="char" if name == "tfidf_char" else "word")
    raise MoonError(f"unknown lexical baseline {name!r}; choose from {', '.join(LEXICAL)}")


def sentence_transformer_embeddings(model_dir: str, texts: Sequence[str], *, batch_size: int = 32, device: str = "cpu", trust_remote_code: bool = False):
    """(n, D) float32 torch tensor of unit vectors from a sentence-transformers folder (one with modules.json)."""
    import torch

    st = require("sentence_transformers", f"--baseline {model_dir} (a sentence-transformers folder)")
    model = st.SentenceTransformer(str(model_dir), device=device, trust_remote_code=trust_remote_code)
    emb = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
    return torch.as_tensor(np.asarray(emb, dtype=np.float32))
