"""`moon-rl eval`: the tasks on stub models with known answers, and one real run (base vs SFT vs GRPO outputs)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from data_prep.schema import Product, load_catalog, write_catalog
from moon_rl.eval.metrics import first_relevant_ranks, recall_at_k
from moon_rl.eval.random_run import write_random_run
from moon_rl.eval.run import EvalConfig
from moon_rl.eval.tasks import TaskRunner, load_eval_data, sample_rows
from moon_rl.inference import Query, as_record


class StubModel:
    """Embeds by lookup: a product is one-hot(group) + 0.5 one-hot(category); its queries and its bare image
    get the product's vector, a category name its category one-hot. `collapsed=True` maps everything to one
    vector. Generation answers with the gold attributes."""

    is_vision_language = True

    def __init__(self, products: list[Product], collapsed: bool = False):
        self.by_id = {p.id: p for p in products}
        self.by_query = {q: p for p in products for q in p.queries}
        self.groups = sorted({p.group_id for p in products})
        self.cats = sorted({p.category for p in products})
        self.collapsed = collapsed

    def _vec(self, rec) -> torch.Tensor:
        v = torch.zeros(len(self.groups) + len(self.cats))
        if self.collapsed:
            return v + 1
        if isinstance(rec, Query) and rec.text in self.cats:
            v[len(self.groups) + self.cats.index(rec.text)] = 1
            return v
        product = self.by_query[rec.text] if isinstance(rec, Query) and rec.text else self.by_id[rec.id]
        v[self.groups.index(product.group_id)] = 1
        v[len(self.groups) + self.cats.index(product.category)] = 0.5
        return v

    def encode_with_completions(self, records, **kwargs):
        recs = [as_record(r) for r in records]
        return F.normalize(torch.stack([self._vec(r) for r in recs]), dim=-1), self.generate(recs)

    def generate(self, records, **kwargs):
        return [f"<think>.</think><answer>{json.dumps(getattr(r, 'attributes', {}))}</answer>" for r in records]


def _runner(catalog_dir, collapsed=False, **cfg):
    data = load_eval_data(catalog_dir, max_products=500, max_queries=200)
    everything = load_catalog(catalog_dir)
    config = EvalConfig(model="stub", data=str(catalog_dir), out="unused", progress=False, **cfg)
    return TaskRunner(StubModel(everything, collapsed), data, config), data


def test_tasks_with_a_perfect_model(sft_catalog_dir):
    runner, data = _runner(sft_catalog_dir)
    results = runner.run(["retrieval", "classification", "attributes"])
    for setting in ("text->multimodal", "image->multimodal", "multimodal->multimodal"):
        assert results["retrieval"][setting]["recall@1"] == 1.0, setting
        assert results["retrieval"][setting]["mrr"] == 1.0
    assert results["retrieval"]["text->multimodal"]["n_queries"] == sum(len(p.queries) for p in data.corpus)
    assert results["classification"]["zero_shot"]["full_path"] == 1.0
    # k-NN can only be right for test products whose category has a train product.
    train_cats = {p.category for p in data.train}
    expected = sum(p.category in train_cats for p in data.corpus) / len(data.corpus)
    assert results["classification"]["knn"]["full_path"] == pytest.approx(expected)
    assert results["attributes"]["micro_f1"] == 1.0 and results["attributes"]["parse_rate"] == 1.0
    assert set(results["attributes"]["per_attribute"].values()) == {1.0}


def test_tasks_with_a_collapsed_model_score_zero(sft_catalog_dir):
    runner, data = _runner(sft_catalog_dir, collapsed=True)
    results = runner.retrieval()
    n = len(data.corpus)
    for setting, res in results.items():
        # Pessimistic ties: every distractor ties with the positive and ranks ahead of it.
        assert res["recall@1"] == 0.0, setting
    groups = {p.group_id for p in data.corpus}
    assert results["image->multimodal"]["mrr"] == pytest.approx(
        sum(1 / (n - sum(q.group_id == p.group_id for q in data.corpus) + 1) for p in data.corpus) / n
    )
    assert len(groups) < n  # the catalog has multi-view groups, so multimodal->multimodal was scored


def test_matching_catalog_uses_query_and_corpus_splits(tmp_path):
    products = [
        Product(id=f"A-{i}", title=f"offer a {i}", category="Unknown", group_id=f"g{i}") for i in range(3)
    ] + [Product(id=f"B-{i}", title=f"offer b {i}", category="Unknown", group_id=f"g{i}") for i in range(5)]
    write_catalog(tmp_path, products, {"query": ["A-0", "A-1", "A-2"], "corpus": [f"B-{i}" for i in range(5)]})
    runner, data = _runner(tmp_path)
    assert [p.id for p in data.matching_queries] == ["A-0", "A-1", "A-2"]
    results = runner.retrieval()
    assert list(results) == ["query->product"]
    assert results["query->product"]["recall@1"] == 1.0 and results["query->product"]["n_queries"] == 3


@pytest.fixture(scope="module")
def three_models(tiny_model_dir, tmp_path_factory):
    """The untouched base, an 'SFT' and a 'GRPO' output (random weights, moon-rl layout, training logs)."""
    root = tmp_path_factory.mktemp("eval-models")
    base = tiny_model_dir("qwen2_5_vl")
    sft = write_random_run(base, root / "sft", kind="sft", seed=1)
    grpo = write_random_run(base, root / "grpo", kind="grpo", pooling="fusion", seed=2)
    history = [{"step": s, "loss": 2.0 / s, "contrastive_loss": 1.0 / s} for s in (1, 2, 3)]
    (sft / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    history = [{"step": s, "loss": 0.1 * s, "reward": 0.2 * s, "rewards/attribute_f1/mean": 0.1 * s} for s in (1, 2, 3)]
    (grpo / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    return base, sft, grpo


def test_eval_cli_base_vs_sft_vs_grpo(three_models, sft_catalog_dir, tmp_path):
    from moon_rl.cli import app
    from moon_rl.inference import load

    base, sft, grpo = three_models
    out = tmp_path / "eval"
    args = ["eval", "--model", str(grpo), "--data", str(sft_catalog_dir), "--out", str(out), "--baseline", str(sft)]
    # Small caps keep it fast on CPU: 6 products per split, 4 queries per setting, one batch each.
    args += ["--baseline", str(base), "--max-new-tokens", "4", "--max-products", "6", "--max-queries", "4", "--batch-size", "16"]
    args += ["--set", "progress=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["grpo", "sft", base.name]
    for name, res in metrics["models"].items():
        for setting in ("text->multimodal", "image->multimodal", "multimodal->multimodal"):
            assert 0.0 <= res["retrieval"][setting]["recall@1"] <= res["retrieval"][setting]["recall@10"] <= 1.0
        assert set(res["classification"]) == {"zero_shot", "knn"}
        assert res["attributes"]["n_records"] > 0
    assert metrics["models"][base.name]["embedding_dim"] == 64 and metrics["models"]["sft"]["embedding_dim"] == 32
    report = (out / "report.md").read_text()
    assert "## Retrieval" in report and "## Classification" in report and "## Attributes" in report
    assert f"| grpo | sft | {base.name} |" in report
    for png in ("recall_at_k.png", "training_sft.png", "training_grpo.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert not (out / f"training_{base.name}.png").exists()  # the base model has no training logs

    # The report's numbers are the metric of real embeddings: recompute one by hand for the base model.
    data = load_eval_data(sft_catalog_dir, 6, 4)
    model = load(base)
    kw = dict(catalog_dir=sft_catalog_dir, max_new_tokens=4, batch_size=16, progress=False)
    corpus = model.encode(data.corpus, **kw)
    # The 4 queries are a seeded random sample (sample_seed 0), the same one every row of the table reads.
    pairs = [(q, p.group_id) for p in data.corpus for q in p.queries]
    pairs = [pairs[i] for i in sample_rows(len(pairs), 4, 0, "text->multimodal")]
    queries = model.encode([Query(text=q) for q, _ in pairs], **kw)
    labels = {g: i for i, g in enumerate(sorted({p.group_id for p in data.corpus}))}
    ranks = first_relevant_ranks(queries, corpus, [labels[g] for _, g in pairs], [labels[p.group_id] for p in data.corpus])
    got = metrics["models"][base.name]["retrieval"]["text->multimodal"]
    assert got["recall@1"] == pytest.approx(recall_at_k(ranks, 1)) and got["recall@5"] == pytest.approx(recall_at_k(ranks, 5))


def test_eval_cli_rejects_bad_input(tmp_path, sft_catalog_dir):
    from moon_rl.cli import app

    result = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "missing"), "--data", str(sft_catalog_dir), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(app, ["eval", "--model", "x", "--data", "y", "--out", "z", "--tasks", "retrieval,speed"])
    assert result.exit_code == 2 and "speed" in result.output
    assert CliRunner().invoke(app, ["eval", "--help"]).exit_code == 0
