"""`moon-rl eval --baseline bm25|tfidf|tfidf_char|ST_FOLDER` and sampling without silent caps (issue 15, items 4-5).

The baseline rows must be the numbers a direct computation gives on the very queries and corpus the model rows
read (the same seeded sample); a cap must draw a seeded random sample (not file order), say so in the report,
and 0 must mean no cap.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from data_prep.formats import embedding_text
from data_prep.schema import Product, write_catalog
from moon_rl.errors import MoonError
from moon_rl.eval import lexical
from moon_rl.eval.metrics import first_relevant_ranks, ranks_from_scores
from moon_rl.eval.run import EvalConfig
from moon_rl.eval.tasks import attribute_records, load_eval_data, retrieval_queries


def naive_ranks(scores, q_groups, c_groups, exclude=None):
    """Rank of the best relevant item, pessimistic ties, written as plainly as possible (0: none relevant)."""
    ranks = []
    for q, group in enumerate(q_groups):
        skip = exclude[q] if exclude is not None else -1
        relevant = [j for j, g in enumerate(c_groups) if g == group and j != skip]
        if not relevant:
            ranks.append(0)
            continue
        best = max(float(scores[q][j]) for j in relevant)
        ranks.append(1 + sum(1 for j, g in enumerate(c_groups) if g != group and j != skip and float(scores[q][j]) >= best - 1e-6))
    return ranks


def recall1_mrr(ranks):
    found = [r for r in ranks if r > 0]
    return sum(r == 1 for r in found) / len(found), sum(1 / r for r in found) / len(found)


# ---- pure functions ---------------------------------------------------------------------------------------


def test_ranks_from_scores_equals_first_relevant_ranks_and_the_plain_definition():
    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(9, 6, generator=gen), dim=-1)
    c = torch.nn.functional.normalize(torch.randn(15, 6, generator=gen), dim=-1)
    c[3] = c[4]  # an exact tie between a relevant and a non-relevant item
    q_lab = [0, 1, 2, 3, 4, 0, 1, 7, 2]  # label 7: no relevant item
    c_lab = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 5, 6, 6, 0]
    exclude = [0, -1, 2, -1, -1, -1, -1, -1, 7]
    scores = q @ c.T
    got = ranks_from_scores(scores, q_lab, c_lab, exclude=exclude)
    assert got.tolist() == first_relevant_ranks(q, c, q_lab, c_lab, exclude=exclude).tolist()
    assert got.tolist() == naive_ranks(scores.tolist(), q_lab, c_lab, exclude)
    assert got[7] == 0
    assert ranks_from_scores(torch.tensor([[0.5, 0.5]]), [1], [0, 1]).tolist() == [2]  # the tie goes to the distractor


def test_lexical_scores_rank_the_matching_offer_first():
    corpus = ["sony bravia 40 inch lcd tv kdl40", "koss eq50 stereo equalizer", "samsung 40 inch led tv"]
    queries = ["Sony KDL40 LCD television", "koss equalizer eq50"]
    for name in lexical.LEXICAL:
        scores = lexical.lexical_scores(name, queries, corpus)
        assert scores.shape == (2, 3) and scores.dtype == np.float32, name
        assert scores.argmax(axis=1).tolist() == [0, 1], name
    assert lexical.bm25_scores(["x"], corpus).tolist() == [[0.0, 0.0, 0.0]]  # nothing indexable: zeros, no crash
    with pytest.raises(MoonError, match="unknown lexical baseline"):
        lexical.lexical_scores("bm99", queries, corpus)


def test_a_missing_package_names_the_bench_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm25s", None)  # import bm25s now raises ImportError
    with pytest.raises(MoonError, match=r"pip install 'moon-rl\[bench\]'"):
        lexical.bm25_scores(["a b"], ["a b"])


# ---- sampling -----------------------------------------------------------------------------------------------


@pytest.fixture
def flat_catalog(tmp_path):
    """40 one-product groups (every product a test product, two search queries and one attribute each)."""
    products = [
        Product(id=f"p{i:02d}", title=f"item {i} model x{i}", category="A > B", group_id=f"g{i:02d}", queries=[f"find item {i}", f"x{i}"],
                attributes={"colour": "red" if i % 2 else "blue"})
        for i in range(40)
    ]
    write_catalog(tmp_path / "cat", products, {"test": [p.id for p in products]})
    return tmp_path / "cat"


def test_caps_draw_a_seeded_random_sample_not_file_order(flat_catalog):
    data = load_eval_data(flat_catalog, max_products=10, max_queries=5, seed=0)
    ids = [p.id for p in data.corpus]
    assert len(ids) == 10 and ids != [f"p{i:02d}" for i in range(10)]  # not the first 10
    assert ids == sorted(ids)  # kept in file order
    assert ids == [p.id for p in load_eval_data(flat_catalog, 10, 5, seed=0).corpus]  # reproducible
    assert ids != [p.id for p in load_eval_data(flat_catalog, 10, 5, seed=1).corpus]  # the seed matters
    assert data.sampling["corpus"] == {"n": 10, "of": 40, "how": "random whole groups"}

    text = retrieval_queries(data, 5, seed=0)["text->multimodal"]
    all_queries = [q for p in data.corpus for q in p.queries]
    assert len(text.records) == 5 and text.available == 20
    assert [r.text for r in text.records] != all_queries[:5]
    assert [r.text for r in text.records] == [r.text for r in retrieval_queries(data, 5, seed=0)["text->multimodal"].records]

    records = attribute_records(data, 3, seed=0)
    assert len(records) == 3 and [i for i, _ in records] != [0, 1, 2]


def test_zero_means_no_cap(flat_catalog):
    data = load_eval_data(flat_catalog, max_products=0, max_queries=0)
    assert len(data.corpus) == 40 and data.sampling["corpus"]["how"] == "all"
    assert len(retrieval_queries(data, 0)["text->multimodal"].records) == 80
    assert len(attribute_records(data, 0)) == 40
    EvalConfig(max_products=0, max_queries=0, max_attribute_records=0)  # accepted
    with pytest.raises(MoonError, match="max_products must be >= 0"):
        EvalConfig(max_products=-1)


# ---- end to end ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def st_folder(tiny_model_dir, tmp_path_factory):
    """A sentence-transformers folder (modules.json) around a tiny text model: Transformer + mean Pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    body = Transformer(str(tiny_model_dir("qwen2")), max_seq_length=64,
                       modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
                       module_output_name="token_embeddings")
    out = tmp_path_factory.mktemp("st") / "tiny-st"
    SentenceTransformer(modules=[body, Pooling(body.get_embedding_dimension(), pooling_mode="mean"), Normalize()], device="cpu").save(str(out))
    return out


def test_eval_cli_adds_baseline_rows_on_the_same_queries(tiny_model_dir, st_folder, sft_catalog_dir, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer

    from moon_rl.cli import app

    model = tiny_model_dir("qwen2")
    out = tmp_path / "eval"
    args = ["eval", "--model", str(model), "--data", str(sft_catalog_dir), "--out", str(out), "--tasks", "retrieval",
            "--baseline", "bm25", "--baseline", "tfidf", "--baseline", "tfidf_char", "--baseline", str(st_folder),
            "--no-reasoning", "--no-query-reasoning", "--max-queries", "5", "--set", "progress=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["baselines"]) == ["bm25", "tfidf", "tfidf_char", "tiny-st"]

    # The same query sample the model rows read, recomputed here from the catalog and the seed.
    data = load_eval_data(sft_catalog_dir, 500, 5, seed=0)
    sets = retrieval_queries(data, 5, seed=0)
    corpus_texts = [embedding_text(p.title, p.attributes) for p in data.corpus]
    c_groups = [p.group_id for p in data.corpus]
    st = SentenceTransformer(str(st_folder), device="cpu")
    for setting in ("text->multimodal", "multimodal->multimodal"):
        qs = sets[setting]
        texts = [r.text if setting == "text->multimodal" else embedding_text(r.title, r.attributes) for r in qs.records]
        model_row = metrics["models"][model.name]["retrieval"][setting]
        direct = {
            "tfidf": (lambda v: (v.transform(texts) @ v.transform(corpus_texts).T).toarray())(TfidfVectorizer(sublinear_tf=True).fit(corpus_texts)),
            "tfidf_char": (lambda v: (v.transform(texts) @ v.transform(corpus_texts).T).toarray())(
                TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 4)).fit(corpus_texts)),
            "bm25": lexical.bm25_scores(texts, corpus_texts),
            "tiny-st": st.encode(texts, normalize_embeddings=True) @ st.encode(corpus_texts, normalize_embeddings=True).T,
        }
        for name, scores in direct.items():
            row = metrics["baselines"][name]["retrieval"][setting]
            r1, mrr = recall1_mrr(naive_ranks(scores, qs.groups, c_groups, qs.rows))
            assert row["recall@1"] == pytest.approx(r1, abs=1e-6) and row["mrr"] == pytest.approx(mrr, abs=1e-6), (setting, name)
            assert row["n_queries"] == model_row["n_queries"] == len(qs.records), (setting, name)
    assert metrics["baselines"]["bm25"]["retrieval"]["image->multimodal"]["skipped"].startswith("n/a")

    report = (out / "report.md").read_text()
    assert f"| setting | metric | {model.name} | bm25 | tfidf | tfidf_char | tiny-st |" in report
    assert "n/a: its queries are images" in report and "## Sampling" in report
    n_text = sets["text->multimodal"].available
    assert f"- queries: text->multimodal: 5 of {n_text} (random)" in report and "seed 0" in report
    assert metrics["sampling"]["samples"]["queries: text->multimodal"] == {"n": 5, "of": n_text, "how": "random"}


def test_eval_cli_baseline_errors(tiny_model_dir, sft_catalog_dir, tmp_path, monkeypatch):
    from moon_rl.cli import app

    model = str(tiny_model_dir("qwen2"))
    base = ["eval", "--model", model, "--data", str(sft_catalog_dir), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*base, "--baseline", "bm25", "--tasks", "classification"])
    assert result.exit_code == 2 and "retrieval baseline" in result.output
    monkeypatch.setitem(sys.modules, "bm25s", None)
    result = CliRunner().invoke(app, [*base, "--baseline", "bm25"])
    assert result.exit_code == 2 and "moon-rl[bench]" in result.output
    assert not (tmp_path / "o").exists()  # refused before any model ran
