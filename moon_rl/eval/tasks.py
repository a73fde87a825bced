"""The three evaluation tasks of `moon-rl eval`, run for one loaded model on one catalog.

Data (`load_eval_data`): the catalog's test split is the product corpus (all products when there is no
split), capped at `max_products` whole groups; the train split (same cap) is the k-NN memory.

Caps draw seeded random samples, never the first N in file order (`sample_rows`, `_cap_by_group`: one
generator per (seed, what is sampled), so changing one cap does not move another sample); a cap of 0 means
none. Every draw is recorded (`EvalData.sampling`, `sampling_summary`) and the report states it.

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
import random
from pathlib import Path
from typing import Any

import torch

from data_prep.schema import SPLITS_DIR, Product, RecordError, load_catalog
from moon_rl.errors import MoonError
from moon_rl.eval import metrics as M
from moon_rl.eval.search import resolve_backend
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
    # What each cap kept: {"corpus": {"n": 6, "of": 32, "how": "..."}, ...} (see `sampling_summary`).
    sampling: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _rng(seed: int, what: str) -> random.Random:
    """One generator per (seed, sample): str seeds are hashed with SHA-512, so draws are the same on every run."""
    return random.Random(f"{seed}/{what}")


def sample_rows(n: int, cap: int, seed: int, what: str) -> list[int]:
    """Indices of a seeded random sample of `cap` of `n` items, in file order; all of them when cap is 0 or >= n."""
    if not cap or cap >= n:
        return list(range(n))
    return sorted(_rng(seed, what).sample(range(n), cap))


def _sample_note(kept: int, total: int, how: str) -> dict[str, Any]:
    return {"n": kept, "of": total, "how": how if kept < total else "all"}


def _cap_by_group(products: list[Product], limit: int, first: set[str] | None = None, seed: int = 0, what: str = "corpus") -> list[Product]:
    """At most `limit` products (0: no cap), whole groups drawn in seeded random order, groups in `first`
    before the rest; the kept products stay in file order."""
    if not limit or len(products) <= limit:
        return products
    order: dict[str, list[Product]] = {}
    for p in products:
        order.setdefault(p.group_id, []).append(p)
    groups = list(order)
    _rng(seed, what).shuffle(groups)
    groups.sort(key=lambda g: g not in (first or set()))  # stable: preferred groups first, each part still shuffled
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


def load_eval_data(catalog_dir: str | Path, max_products: int, max_queries: int, seed: int = 0) -> EvalData:
    """The corpus, k-NN memory and (matching catalogs) queries; caps of 0 keep everything, others draw with `seed`."""
    catalog_dir = Path(catalog_dir)
    try:
        everything = load_catalog(catalog_dir)
    except RecordError as err:
        raise MoonError(str(err)) from None
    notes: list[str] = []
    sampling: dict[str, dict[str, Any]] = {}
    categories = sorted({p.category for p in everything})
    all_train = _split(catalog_dir, "train") or []
    train = _cap_by_group(all_train, max_products, seed=seed, what="train")
    if all_train:
        sampling["k-NN memory (train split)"] = _sample_note(len(train), len(all_train), "random whole groups")
    queries = _split(catalog_dir, "query")
    corpus_split = _split(catalog_dir, "corpus")
    if queries is not None and corpus_split is not None:
        n_queries = len(queries)
        queries = [queries[i] for i in sample_rows(n_queries, max_queries, seed, "query->product")]
        sampling["queries: query->product"] = _sample_note(len(queries), n_queries, "random")
        corpus = _cap_by_group(corpus_split, max_products, first={q.group_id for q in queries}, seed=seed)
        sampling["corpus"] = _sample_note(len(corpus), len(corpus_split), "random whole groups, the queries' groups first")
        return EvalData(catalog_dir, corpus, train, categories, matching_queries=queries, notes=notes, sampling=sampling)
    test = _split(catalog_dir, "test")
    if test is None:
        notes.append("no splits/test.txt: every product is in the evaluation corpus")
        test = everything
    elif not train:
        # The train split only feeds the k-NN vote; retrieval, zero-shot classification and attributes run without.
        has_train = (catalog_dir / SPLITS_DIR / "train.txt").is_file()
        notes.append(f"{'empty' if has_train else 'no'} train split: k-NN classification skipped")
    corpus = _cap_by_group(test, max_products, seed=seed)
    sampling["corpus"] = _sample_note(len(corpus), len(test), "random whole groups")
    return EvalData(catalog_dir, corpus, train, categories, notes=notes, sampling=sampling)


def attribute_candidates(data: EvalData) -> list[tuple[int, Product]]:
    """(corpus index, product) of every product the attributes task can score: those with attributes, and, in a
    catalog with a category schema (catalog.json `category_attributes`), every product of a schema category: its
    prompt asks for the schema's names, so a product whose every attribute is absent (AE-110K's all-"n/a" titles) is
    a test of negatives, whose filled values count against precision as in ExtractGPT's scores."""
    from data_prep.formats import category_schema

    schema = category_schema(data.catalog_dir)
    return [(i, p) for i, p in enumerate(data.corpus) if p.attributes or p.category in schema]


def attribute_records(data: EvalData, cap: int, seed: int = 0) -> list[tuple[int, Product]]:
    """(corpus index, product) of the products scored for attributes: a seeded random `cap` of
    `attribute_candidates` (0: all), in corpus order."""
    candidates = attribute_candidates(data)
    return [candidates[k] for k in sample_rows(len(candidates), cap, seed, "attributes")]


@dataclasses.dataclass
class QuerySet:
    """The queries of one retrieval setting, the same for every model and baseline row."""

    records: list  # what is encoded: `Query`s (text or images) or `Product`s
    groups: list[str]  # the group_id each query looks for
    available: int  # queries there were before the cap
    rows: list[int] | None = None  # multimodal->multimodal: the queries are these corpus rows, each excluded from its own search
    has_text: bool = True  # False for image queries: text-only rows (lexical baselines) get "n/a"


def retrieval_queries(data: EvalData, cap: int, seed: int = 0) -> dict[str, QuerySet | str]:
    """Setting -> its queries (a seeded random `cap` of them, 0: all), or the reason it is skipped."""
    if data.matching_queries is not None:  # sampled in load_eval_data: the corpus cap keeps their groups first
        queries = data.matching_queries
        total = data.sampling.get("queries: query->product", {}).get("of", len(queries))
        return {"query->product": QuerySet(list(queries), [q.group_id for q in queries], total)}
    out: dict[str, QuerySet | str] = {}
    text_q = [(q, p.group_id) for p in data.corpus for q in p.queries]
    if text_q:
        keep = [text_q[i] for i in sample_rows(len(text_q), cap, seed, "text->multimodal")]
        out["text->multimodal"] = QuerySet([Query(text=q) for q, _ in keep], [g for _, g in keep], len(text_q))
    else:
        out["text->multimodal"] = "no test product has search queries"

    with_images = [p for p in data.corpus if p.images]
    if with_images:
        keep = [with_images[i] for i in sample_rows(len(with_images), cap, seed, "image->multimodal")]
        records = [Query(images=list(p.images), id=p.id) for p in keep]
        out["image->multimodal"] = QuerySet(records, [p.group_id for p in keep], len(with_images), has_text=False)
    else:
        out["image->multimodal"] = "the catalog has no images"

    first_of_group: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for i, p in enumerate(data.corpus):
        first_of_group.setdefault(p.group_id, i)
        sizes[p.group_id] = sizes.get(p.group_id, 0) + 1
    firsts = [i for g, i in first_of_group.items() if sizes[g] > 1]
    if firsts:
        rows = [firsts[k] for k in sample_rows(len(firsts), cap, seed, "multimodal->multimodal")]
        products = [data.corpus[i] for i in rows]
        out["multimodal->multimodal"] = QuerySet(products, [p.group_id for p in products], len(firsts), rows=rows)
    else:
        out["multimodal->multimodal"] = "no group has two products in the corpus"
    return out


def sampling_summary(data: EvalData, cfg: Any) -> dict[str, Any]:
    """Every cap of this evaluation: {"seed": s, "samples": {what: {"n", "of", "how"}}} (how: "all" when uncapped)."""
    samples = dict(data.sampling)
    if "retrieval" in cfg.tasks:
        for setting, qs in retrieval_queries(data, cfg.max_queries, cfg.sample_seed).items():
            if isinstance(qs, QuerySet):
                samples.setdefault(f"queries: {setting}", _sample_note(len(qs.records), qs.available, "random"))
    if "attributes" in cfg.tasks:
        total = len(attribute_candidates(data))
        kept = len(attribute_records(data, cfg.max_attribute_records, cfg.sample_seed))
        samples["attribute records"] = _sample_note(kept, total, "random, of the corpus products with attributes (or of a schema category)")
    return {"seed": cfg.sample_seed, "samples": samples}


def retrieval_result(ranks: torch.Tensor, cfg: Any, corpus_size: int) -> dict[str, Any]:
    """The metrics of one setting from its first-relevant ranks (0: no relevant item in the corpus)."""
    found = ranks > 0
    if not found.any():
        return {"skipped": "no query has a relevant product in the corpus"}
    out = M.retrieval_summary(ranks[found], ks=cfg.ks, curve_k=min(cfg.curve_k, corpus_size))
    out["n_without_relevant"] = int((~found).sum())
    return out


def majority_baseline(data: EvalData, cap: int, seed: int = 0) -> dict[str, Any]:
    """The majority-option baseline on the same records `TaskRunner.attributes` scores (no model involved)."""
    records = attribute_records(data, cap, seed)
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

    def retrieval(self) -> dict[str, Any]:
        corpus_emb, _ = self.corpus()
        c_groups = [p.group_id for p in self.data.corpus]
        results: dict[str, Any] = {}
        for setting, qs in retrieval_queries(self.data, self.cfg.max_queries, self.cfg.sample_seed).items():
            if isinstance(qs, str):
                results[setting] = {"skipped": qs}
                continue
            if not qs.has_text and not self.model.is_vision_language:
                results[setting] = {"skipped": "text-only model: it reads no images"}
                continue
            if qs.rows is not None:  # the queries are corpus products: their embeddings are already there
                emb = corpus_emb[qs.rows]
            else:  # matching queries are products (the product path); search queries and images are queries
                reasoning = self.cfg.reasoning if setting == "query->product" else self.cfg.query_reasoning
                emb, _ = self._encode(qs.records, reasoning=reasoning, desc=f"encode {setting.split('->')[0]} queries")
            q_lab, c_lab = M.encode_labels(qs.groups, c_groups)
            ranks = M.first_relevant_ranks(emb, corpus_emb, q_lab, c_lab, exclude=qs.rows, chunk_size=self.cfg.chunk_size)
            results[setting] = retrieval_result(ranks, self.cfg, corpus_emb.size(0))
        return results

    # ---- classification ----------------------------------------------------------------------

    def classification(self) -> dict[str, Any]:
        corpus_emb, _ = self.corpus()
        gold = [p.category for p in self.data.corpus]
        cats = self.data.categories
        cat_emb, _ = self._encode([Query(text=c) for c in cats], reasoning=self.cfg.query_reasoning, desc="encode categories")
        _, top = M.chunked_topk(corpus_emb, cat_emb, 1, chunk_size=self.cfg.chunk_size, backend=self.cfg.search_backend)
        results: dict[str, Any] = {"zero_shot": M.level_accuracy([cats[i] for i in top[:, 0].tolist()], gold)}
        results["zero_shot"]["n_categories"] = len(cats)
        results["zero_shot"]["search_backend"] = resolve_backend(self.cfg.search_backend)  # which exact top-k ran
        if not self.data.train:
            results["knn"] = {"skipped": "no train split to vote from"}
            return results
        train_emb, _ = self._encode(self.data.train, reasoning=self.cfg.reasoning, desc="encode train products")
        scores, idx = M.chunked_topk(corpus_emb, train_emb, self.cfg.knn_k, chunk_size=self.cfg.chunk_size, backend=self.cfg.search_backend)
        labels = [[self.data.train[j].category for j in row] for row in idx.tolist()]
        results["knn"] = M.level_accuracy(M.knn_vote(labels, scores), gold)
        results["knn"]["k"] = min(self.cfg.knn_k, len(self.data.train))
        results["knn"]["search_backend"] = results["zero_shot"]["search_backend"]
        return results

    # ---- attributes --------------------------------------------------------------------------

    def attributes(self) -> dict[str, Any]:
        records = attribute_records(self.data, self.cfg.max_attribute_records, self.cfg.sample_seed)
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
