"""Text baselines as rows of the retrieval table: `moon-rl eval --baseline bm25|tfidf|tfidf_char|ST_FOLDER`.

    moon-rl eval --model runs/sft --data data/abt-buy --out runs/sft/eval --baseline bm25 --baseline tfidf_char \
        --baseline ~/.cache/moon-rl/st/all-minilm-l6-v2-0.1.2      # a sentence-transformers folder (modules.json)

Each baseline reads the plain text of every record (`lexical.record_text`, what moon-rl's plain embedding path
reads) and is scored on exactly the queries and corpus of the model rows (`tasks.retrieval_queries`, the same
seeded sample), with the same ranks (pessimistic ties) and metrics. Settings whose queries carry no text
(image->multimodal) are "n/a" for these rows. They take part in retrieval only: classification and
attributes are the models' (the attribute table has its own model-free baseline, the majority option).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from moon_rl.eval import lexical
from moon_rl.eval import metrics as M
from moon_rl.eval.tasks import EvalData, retrieval_queries, retrieval_result

ST_KIND = "sentence-transformers"
NO_TEXT = "n/a: its queries are images, and this baseline reads text only"


def baseline_kind(spec: str) -> str | None:
    """'lexical' for a name of `lexical.LEXICAL`, 'sentence-transformers' for a folder with modules.json, else
    None (a model moon-rl loads). Names win over a folder of the same name: pass ./bm25 for the folder."""
    if spec in lexical.LEXICAL:
        return "lexical"
    if (Path(spec).expanduser() / "modules.json").is_file():
        return ST_KIND
    return None


def check_baseline(spec: str, kind: str) -> None:
    """Fail before any model is evaluated when the package this baseline needs is missing."""
    if kind == ST_KIND:
        lexical.require("sentence_transformers", f"--baseline {spec} (a sentence-transformers folder)")
    elif spec == "bm25":
        lexical.require("bm25s", "--baseline bm25")
    else:
        lexical.require("sklearn.feature_extraction.text", f"--baseline {spec}")


def describe(spec: str, kind: str) -> str:
    if kind == ST_KIND:
        return "sentence-transformers model, cosine of its normalized embeddings"
    return lexical.LEXICAL[spec]


def evaluate_text_baseline(spec: str, kind: str, data: EvalData, cfg: Any) -> dict[str, Any]:
    """{"path", "kind", "description", "retrieval": {setting: metrics}, "seconds"} for one baseline row."""
    start = time.perf_counter()
    corpus_texts = [lexical.record_text(p) for p in data.corpus]
    c_groups = [p.group_id for p in data.corpus]
    if kind == ST_KIND:
        embed = lambda texts: lexical.sentence_transformer_embeddings(  # noqa: E731
            str(Path(spec).expanduser()), texts, batch_size=cfg.batch_size, device=cfg.device, trust_remote_code=cfg.trust_remote_code
        )
        corpus_emb = embed(corpus_texts)  # (N, D)
    results: dict[str, Any] = {}
    for setting, qs in retrieval_queries(data, cfg.max_queries, cfg.sample_seed).items():
        if isinstance(qs, str):
            results[setting] = {"skipped": qs}
            continue
        if not qs.has_text:
            results[setting] = {"skipped": NO_TEXT}
            continue
        q_lab, c_lab = M.encode_labels(qs.groups, c_groups)
        texts = [lexical.record_text(r) for r in qs.records]
        if kind == ST_KIND:
            emb = corpus_emb[qs.rows] if qs.rows is not None else embed(texts)
            ranks = M.first_relevant_ranks(emb, corpus_emb, q_lab, c_lab, exclude=qs.rows, chunk_size=cfg.chunk_size)
        else:
            scores = torch.from_numpy(lexical.lexical_scores(spec, texts, corpus_texts))  # (Q, N)
            ranks = M.ranks_from_scores(scores, q_lab, c_lab, exclude=qs.rows)
        results[setting] = retrieval_result(ranks, cfg, len(corpus_texts))
    return {
        "path": spec,
        "kind": kind,
        "description": describe(spec, kind),
        "retrieval": results,
        "seconds": round(time.perf_counter() - start, 2),
    }
