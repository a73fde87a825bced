"""The three evaluation tasks of `moon-rl eval`, run for one loaded model on one catalog.

Data (`load_eval_data`): the catalog's test split is the product corpus (all products when there is no
split), capped at `max_products` whole groups; the train split (same cap) is the k-NN memory.

Retrieval (a hit shares the query's `group_id`; `first_relevant_ranks`, pessimistic ties):
- text->multimodal: each test product's search `queries`, encoded as bare text `Query`s, against the
  corpus of full products (title, description, image).
- image->multimodal: each product's images alone (no text, no category) against the corpus; the product's
  own full record is a hit. Skipped for catalogs without images and for text-only models.
- multimodal->multimodal: for every group with at least two products in the corpus, its first product is
  the query and the others are the hits; the query itself is excluded from the corpus.
- catalogs with splits/query.txt + splits/corpus.txt (product matching, `data prepare --source matching`)
  instead search the corpus split with the query split's products ("query->product").

Classification (accuracy at each level of the category path):
- zero_shot: the nearest category-name embedding (each path "A > B > C" encoded as a text query).
- knn: similarity-weighted vote of the k nearest train products' full paths.

Attributes: the model's own completion for each test product (the reasoning generated while encoding it,
or a fresh greedy generation when products are encoded without reasoning), scored by
`metrics.attribute_metrics` (the attribute rewards' parsing and matching). The majority-option baseline
(`majority_baseline`: each attribute's commonest value in the train split) is scored on the same records.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from data_prep.schema import SPLITS_DIR, Product, RecordError, load_catalog
from moon_rl.errors import MoonError
from moon_rl.eval import metrics as M
from moon_rl.inference import MoonModel, Query

TASKS = ("retrieval", "classification", "attributes", "pairwise")  # pairwise: moon_rl/eval/pairwise.py


@dataclasses.dataclass
class EvalData:
    catalog_dir: Path
    corpus: list[Product]  # the products searched and classified
    train: list[Product]  # k-NN memory (may be empty)
    categories: list[str]  # every category path in the catalog
    matching_queries: list[Product] | None = None  # product-matching catalogs only
    notes: list[str] = dataclasses.field(default_factory=list)


def _cap_by_group(products: list[Product], limit: int, first: set[str] | None = None) -> list[Product]:
    """At most `limit` products, whole groups at a time, groups in `first` before the rest (file order kept)."""
    if len(products) <= limit:
        return products
    order: dict[str, list[Product]] = {}
    for p in products:
        order.setdefault(p.group_id, []).append(p)
    groups = sorted(order, key=lambda g: g not in (first or set()))  # stable: preferred groups first
    kept: set[str] = set()
    count = 0
    for g in groups:
        if count and count + len(order[g]) > limit:
            continue
        kept.add(g)
        count += len(order[g])
    return [p for p in products if p.group_id in kept]


def _split(catalog_dir: Path, name: str) -> list[Product] | None:
    if not (catalog_dir / SPLITS_DIR / f"{name}.txt").is_file():
        return None
    try:
        return load_catalog(catalog_dir, split=name)
    except RecordError as err:
        raise MoonError(str(err)) from None


def load_eval_data(catalog_dir: str | Path, max_products: int, max_queries: int) -> EvalData:
    catalog_dir = Path(catalog_dir)
    try:
        everything = load_catalog(catalog_dir)
    except RecordError as err:
        raise MoonError(str(err)) from None
    notes: list[str] = []
    categories = sorted({p.category for p in everything})
    train = _split(catalog_dir, "train") or []
    train = _cap_by_group(train, max_products)
    queries = _split(catalog_dir, "query")
    corpus_split = _split(catalog_dir, "corpus")
    if queries is not None and corpus_split is not None:
        queries = queries[:max_queries]
        corpus = _cap_by_group(corpus_split, max_products, first={q.group_id for q in queries})
        return EvalData(catalog_dir, corpus, train, categories, matching_queries=queries, notes=notes)
    test = _split(catalog_dir, "test")
    if test is None:
        notes.append("no splits/test.txt: every product is in the evaluation corpus")
        test = everything
    elif not train:
        # The train split only feeds the k-NN vote; retrieval, zero-shot classification and attributes run without.
        has_train = (catalog_dir / SPLITS_DIR / "train.txt").is_file()
        notes.append(f"{'empty' if has_train else 'no'} train split: k-NN classification skipped")
    return EvalData(catalog_dir, _cap_by_group(test, max_products), train, categories, notes=notes)


def attribute_records(data: EvalData, cap: int) -> list[tuple[int, Product]]:
    """(corpus index, product) of the products scored for attributes: the first `cap` with attributes."""
    return [(i, p) for i, p in enumerate(data.corpus) if p.attributes][:cap]


def majority_baseline(data: EvalData, cap: int) -> dict[str, Any]:
    """The majority-option baseline on the same records `TaskRunner.attributes` scores (no model involved)."""
    records = attribute_records(data, cap)
    if not records:
        return {"skipped": "no test product has attributes"}
    golds = [p.attributes for _, p in records]
    return M.majority_attribute_metrics(golds, [p.options for _, p in records], [p.attributes for p in data.train])


class TaskRunner:
    """Runs the tasks for one model; products are encoded once and shared by all tasks."""

    def __init__(self, model: MoonModel, data: EvalData, cfg: Any):
        self.model, self.data, self.cfg = model, data, cfg
        self._corpus: tuple[torch.Tensor, list[str]] | None = None

    def _encode(self, records: list, *, reasoning: bool, desc: str) -> tuple[torch.Tensor, list[str]]:
        return self.model.encode_with_completions(
            records,
            batch_size=self.cfg.batch_size,
            reasoning=reasoning,
            max_new_tokens=self.cfg.max_new_tokens,
            catalog_dir=self.data.catalog_dir,
            progress=self.cfg.progress,
            desc=desc,
        )

    def corpus(self) -> tuple[torch.Tensor, list[str]]:
        if self._corpus is None:
            self._corpus = self._encode(self.data.corpus, reasoning=self.cfg.reasoning, desc="encode products")
        return self._corpus

    def run(self, tasks: list[str]) -> dict[str, Any]:
        return {task: getattr(self, task)() for task in tasks}

    # ---- retrieval ---------------------------------------------------------------------------

    def _ranked(self, queries: torch.Tensor, q_groups: list[str], corpus: torch.Tensor, exclude: list[int] | None = None) -> dict[str, Any]:
        q_lab, c_lab = M.encode_labels(q_groups, [p.group_id for p in self.data.corpus])
        ranks = M.first_relevant_ranks(queries, corpus, q_lab, c_lab, exclude=exclude, chunk_size=self.cfg.chunk_size)
        found = ranks > 0
        if not found.any():
            return {"skipped": "no query has a relevant product in the corpus"}
        out = M.retrieval_summary(ranks[found], ks=self.cfg.ks, curve_k=min(self.cfg.curve_k, corpus.size(0)))
        out["n_without_relevant"] = int((~found).sum())
        return out

    def retrieval(self) -> dict[str, Any]:
        corpus_emb, _ = self.corpus()
        cap = self.cfg.max_queries
        results: dict[str, Any] = {}
        if self.data.matching_queries is not None:
            queries = self.data.matching_queries
            emb, _ = self._encode(queries, reasoning=self.cfg.reasoning, desc="encode queries")
            results["query->product"] = self._ranked(emb, [q.group_id for q in queries], corpus_emb)
            return results

        text_q = [(q, p.group_id) for p in self.data.corpus for q in p.queries][:cap]
        if text_q:
            emb, _ = self._encode([Query(text=q) for q, _ in text_q], reasoning=self.cfg.query_reasoning, desc="encode text queries")
            results["text->multimodal"] = self._ranked(emb, [g for _, g in text_q], corpus_emb)
        else:
            results["text->multimodal"] = {"skipped": "no test product has search queries"}

        with_images = [p for p in self.data.corpus if p.images][:cap]
        if not with_images:
            results["image->multimodal"] = {"skipped": "the catalog has no images"}
        elif not self.model.is_vision_language:
            results["image->multimodal"] = {"skipped": "text-only model: it reads no images"}
        else:
            image_q = [Query(images=list(p.images), id=p.id) for p in with_images]
            emb, _ = self._encode(image_q, reasoning=self.cfg.query_reasoning, desc="encode image queries")
            results["image->multimodal"] = self._ranked(emb, [p.group_id for p in with_images], corpus_emb)

        first_of_group: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for i, p in enumerate(self.data.corpus):
            first_of_group.setdefault(p.group_id, i)
            sizes[p.group_id] = sizes.get(p.group_id, 0) + 1
        mm_idx = [i for g, i in first_of_group.items() if sizes[g] > 1][:cap]
        if mm_idx:
            groups = [self.data.corpus[i].group_id for i in mm_idx]
            results["multimodal->multimodal"] = self._ranked(corpus_emb[mm_idx], groups, corpus_emb, exclude=mm_idx)
        else:
            results["multimodal->multimodal"] = {"skipped": "no group has two products in the corpus"}
        return results

    # ---- classification ----------------------------------------------------------------------

    def classification(self) -> dict[str, Any]:
        corpus_emb, _ = self.corpus()
        gold = [p.category for p in self.data.corpus]
        cats = self.data.categories
        cat_emb, _ = self._encode([Query(text=c) for c in cats], reasoning=self.cfg.query_reasoning, desc="encode categories")
        _, top = M.chunked_topk(corpus_emb, cat_emb, 1, chunk_size=self.cfg.chunk_size)
        results: dict[str, Any] = {"zero_shot": M.level_accuracy([cats[i] for i in top[:, 0].tolist()], gold)}
        results["zero_shot"]["n_categories"] = len(cats)
        if not self.data.train:
            results["knn"] = {"skipped": "no train split to vote from"}
            return results
        train_emb, _ = self._encode(self.data.train, reasoning=self.cfg.reasoning, desc="encode train products")
        scores, idx = M.chunked_topk(corpus_emb, train_emb, self.cfg.knn_k, chunk_size=self.cfg.chunk_size)
        labels = [[self.data.train[j].category for j in row] for row in idx.tolist()]
        results["knn"] = M.level_accuracy(M.knn_vote(labels, scores), gold)
        results["knn"]["k"] = min(self.cfg.knn_k, len(self.data.train))
        return results

    # ---- attributes --------------------------------------------------------------------------

    def attributes(self) -> dict[str, Any]:
        records = attribute_records(self.data, self.cfg.max_attribute_records)
        if not records:
            return {"skipped": "no test product has attributes"}
        if self.cfg.reasoning and self._corpus is not None:
            _, texts = self._corpus  # the reasoning written while encoding the products: no second generation
            completions = [texts[i] for i, _ in records]
        else:
            completions = self.model.generate(
                [p for _, p in records],
                max_new_tokens=self.cfg.max_new_tokens,
                batch_size=self.cfg.batch_size,
                catalog_dir=self.data.catalog_dir,
                progress=self.cfg.progress,
            )
        out = M.attribute_metrics(completions, [p.attributes for _, p in records], [p.options for _, p in records])
        out["examples"] = [{"id": p.id, "completion": c[:300]} for (_, p), c in list(zip(records, completions))[:3]]
        return out
