"""Evaluation metrics as pure functions of tensors and lists (no model, no files), unit-tested by hand.

Retrieval
- `first_relevant_ranks(queries, corpus, query_labels, corpus_labels)`: the 1-based rank of the first
  relevant corpus item (same label, e.g. the same `group_id`) for every query, by cosine/dot score.
  **Tie rule (pessimistic):** a non-relevant item whose score equals the best relevant score (within
  `tie_tol`) is ranked *ahead* of it. A model that maps everything to one vector therefore scores
  Recall@1 = 0 on any corpus with a distractor, never a lucky 1.
- `ranks_from_scores(scores, query_labels, corpus_labels)`: the same ranks from a ready (Q, N) score matrix
  (lexical baselines, whose vectors are sparse and vocabulary-sized).
- `recall_at_k(ranks, k)`, `mrr(ranks)` (full, not truncated at 10), `recall_curve(ranks, max_k)`.
- `chunked_topk(queries, corpus, k, backend="auto")`: exact top-k scores and indices
  (`moon_rl.eval.search`: faiss when installed, else chunked torch matmuls merged into a running top-k).

The torch scorers walk the corpus in chunks of `chunk_size` columns and the queries in chunks of
`query_chunk` rows, so the largest score block is `query_chunk x chunk_size` floats (default
1024 x 8192 x 4 bytes = 32 MiB) whatever the corpus size: a million products never build the full
Q x N similarity matrix. Peak extra memory is that block plus O(Q x k) for the running top-k (and, for ranks, the relevant
(query, item) pairs: O(#pairs x D), small when groups are small).
The embeddings themselves (N x D) are held in memory by the caller.

Classification: `level_accuracy(pred_paths, gold_paths)` (accuracy at each level of "A > B > C"),
`knn_vote(labels, scores)`.

Attributes: `attribute_metrics(completions, golds, options)` parses answers with
`reward_fns.parsing.parse_answer` and matches them with `reward_fns.attributes` (the code the
`attribute_f1` / `attribute_choice` rewards use), so evaluation and training agree on what is right.
`majority_attribute_metrics(golds, options, reference)` scores the majority-option baseline (each attribute's
most frequent value) the same way, on the same records.

Pairwise: `pairwise_accuracy(completions, winners)`, the `pairwise_choice` reward's verdict averaged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from data_prep.schema import split_category
from moon_rl.eval.search import DEFAULT_CHUNK, DEFAULT_QUERY_CHUNK, chunked_topk  # noqa: F401 (chunked_topk: re-exported)
from moon_rl.eval.search import block_view
from moon_rl.eval.search import blocks as _blocks


def _as_labels(labels: Sequence[Any] | torch.Tensor) -> torch.Tensor:
    """Labels as a LongTensor; strings are numbered in order of first appearance by the caller's `encode_labels`."""
    if isinstance(labels, torch.Tensor):
        return labels.long()
    return torch.as_tensor(list(labels), dtype=torch.long)


def encode_labels(*label_lists: Sequence[str]) -> list[torch.Tensor]:
    """Number string labels consistently across several lists: (["a","b"], ["b","c"]) -> ([0,1], [1,2])."""
    table: dict[str, int] = {}
    out = []
    for labels in label_lists:
        out.append(torch.tensor([table.setdefault(str(x), len(table)) for x in labels], dtype=torch.long))
    return out


def _relevant_pairs(q_lab: torch.Tensor, c_lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) query and (P,) corpus row of every relevant (same-label) pair, without an O(Q x N) mask.

    Corpus rows are sorted by label so each query's relevant rows are one contiguous range (searchsorted).
    """
    order = torch.argsort(c_lab, stable=True)
    sorted_lab = c_lab[order]
    lo = torch.searchsorted(sorted_lab, q_lab, right=False)
    counts = torch.searchsorted(sorted_lab, q_lab, right=True) - lo  # (Q,) relevant items per query
    query_of = torch.repeat_interleave(torch.arange(q_lab.numel()), counts)  # (P,) one entry per relevant pair
    offset = torch.arange(query_of.numel()) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    return query_of, order[lo[query_of] + offset]  # rows: (P,) corpus row of each pair


def _best_relevant_scores(queries: torch.Tensor, corpus: torch.Tensor, query_of: torch.Tensor, rows: torch.Tensor, excl: torch.Tensor) -> torch.Tensor:
    """(Q,) best score of a relevant corpus item per query (-inf for none), scoring only the relevant pairs:
    O(#relevant pairs x D), not O(Q x N x D)."""
    scores = (queries[query_of] * corpus[rows]).sum(dim=-1)  # (P,)
    scores = scores.masked_fill(rows == excl[query_of], float("-inf"))
    best = torch.full((queries.size(0),), float("-inf"))
    return best.scatter_reduce(0, query_of, scores, reduce="amax")


@torch.no_grad()
def first_relevant_ranks(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    query_labels: Sequence[int] | torch.Tensor,
    corpus_labels: Sequence[int] | torch.Tensor,
    *,
    exclude: Sequence[int] | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    query_chunk: int = DEFAULT_QUERY_CHUNK,
    tie_tol: float = 1e-6,
) -> torch.Tensor:
    """(Q, D), (N, D) -> (Q,) long: 1-based rank of the best-scoring relevant item, 0 when a query has none.

    `exclude[q]` is a corpus index ignored for query q (the query itself in multimodal->multimodal
    retrieval), -1 for none. The best relevant score is computed from the relevant pairs alone; one chunked
    pass over the corpus then counts the non-relevant items scoring at least as high (pessimistic ties, see
    the module docstring).
    """
    q_lab, c_lab = _as_labels(query_labels), _as_labels(corpus_labels)
    if queries.size(0) != q_lab.numel() or corpus.size(0) != c_lab.numel():
        raise ValueError("labels must have one entry per query / corpus row")
    excl = torch.full((queries.size(0),), -1, dtype=torch.long) if exclude is None else _as_labels(exclude)
    queries, corpus = queries.float(), corpus.float()
    n_q, n = queries.size(0), corpus.size(0)
    query_of, rows = _relevant_pairs(q_lab, c_lab)
    best = _best_relevant_scores(queries, corpus, query_of, rows, excl)
    # The pairs never counted as ahead: the relevant items, and the excluded item where it is not relevant.
    # Each block counts every item at or above the threshold, then takes these pairs back out, reading their
    # scores from the same block (so the two counts agree to the bit); no (q_chunk, c_chunk) label mask.
    own = ((excl >= 0) & (excl < n)).nonzero().squeeze(1)
    own = own[c_lab[excl[own]] != q_lab[own]]
    skip_q, skip_r = torch.cat([query_of, own]), torch.cat([rows, excl[own]])
    by_row = torch.argsort(skip_r, stable=True)
    skip_q, skip_r = skip_q[by_row], skip_r[by_row]
    ahead = torch.zeros(n_q, dtype=torch.long)
    buffer = torch.empty(min(query_chunk, n_q), min(chunk_size, n))  # reused score block
    for qs in _blocks(n_q, query_chunk):
        q = queries[qs]
        threshold = best[qs, None] - tie_tol  # (q_chunk, 1)
        for cs in _blocks(n, chunk_size):
            scores = torch.mm(q, corpus[cs].T, out=block_view(buffer, q.size(0), cs.stop - cs.start))  # (q_chunk, c_chunk)
            # Count only in rows whose chunk maximum reaches the threshold: with a model that ranks the relevant
            # item near the top, most chunks reach it in few rows, and a max is cheaper than a compare-and-count.
            at_or_above = torch.zeros(q.size(0), dtype=torch.long)  # (q_chunk,)
            hit = (scores.amax(dim=1, keepdim=True) >= threshold).squeeze(1).nonzero().squeeze(1)
            if hit.numel() == q.size(0):
                at_or_above += (scores >= threshold).sum(dim=1, dtype=torch.int32)
            elif hit.numel():
                at_or_above[hit] = (scores.index_select(0, hit) >= threshold[hit]).sum(dim=1, dtype=torch.int32).long()
            lo, hi = torch.searchsorted(skip_r, torch.tensor([cs.start, cs.stop])).tolist()
            pq, pr = skip_q[lo:hi], skip_r[lo:hi]  # skipped pairs in this corpus chunk
            inside = (pq >= qs.start) & (pq < qs.stop)
            pq, pr = pq[inside] - qs.start, pr[inside] - cs.start
            skipped = torch.bincount(pq[scores[pq, pr] >= threshold[pq, 0]], minlength=q.size(0))
            ahead[qs] += at_or_above - skipped
    ranks = ahead + 1
    ranks[torch.isinf(best)] = 0  # no relevant item in the corpus
    return ranks


@torch.no_grad()
def ranks_from_scores(
    scores: torch.Tensor,
    query_labels: Sequence[int] | torch.Tensor,
    corpus_labels: Sequence[int] | torch.Tensor,
    *,
    exclude: Sequence[int] | torch.Tensor | None = None,
    tie_tol: float = 1e-6,
) -> torch.Tensor:
    """`first_relevant_ranks` for a ready (Q, N) score matrix (the lexical baselines, `moon_rl.eval.lexical`):
    the same pessimistic ties, the same `exclude`, 0 for a query with no relevant item.

    >>> ranks_from_scores(torch.tensor([[0.9, 0.9, 0.1]]), [1], [0, 1, 1]).tolist()  # a tie with a distractor
    [2]
    """
    scores = torch.as_tensor(scores).float()  # (Q, N)
    q_lab, c_lab = _as_labels(query_labels), _as_labels(corpus_labels)
    if scores.shape != (q_lab.numel(), c_lab.numel()):
        raise ValueError(f"scores {tuple(scores.shape)} must be (queries, corpus) = ({q_lab.numel()}, {c_lab.numel()})")
    excl = torch.full((q_lab.numel(),), -1, dtype=torch.long) if exclude is None else _as_labels(exclude)
    own = torch.arange(c_lab.numel())[None, :] == excl[:, None]  # (Q, N) the query itself
    relevant = (q_lab[:, None] == c_lab[None, :]) & ~own
    best = scores.masked_fill(~relevant, float("-inf")).amax(dim=1) if c_lab.numel() else torch.full((q_lab.numel(),), float("-inf"))
    negative = (q_lab[:, None] != c_lab[None, :]) & ~own
    ranks = ((scores >= best[:, None] - tie_tol) & negative).sum(dim=1) + 1
    ranks[torch.isinf(best)] = 0
    return ranks


def _check_ranks(ranks: torch.Tensor | Sequence[int]) -> torch.Tensor:
    ranks = _as_labels(ranks)
    if ranks.numel() == 0:
        raise ValueError("no queries to score")
    if (ranks < 1).any():
        raise ValueError("ranks must be >= 1; drop queries without a relevant item (rank 0) first")
    return ranks


def recall_at_k(ranks: torch.Tensor | Sequence[int], k: int) -> float:
    """Share of queries whose first relevant item is within the top k."""
    ranks = _check_ranks(ranks)
    return float((ranks <= k).float().mean())


def mrr(ranks: torch.Tensor | Sequence[int]) -> float:
    """Mean reciprocal rank of the first relevant item (not truncated)."""
    ranks = _check_ranks(ranks)
    return float((1.0 / ranks.float()).mean())


def recall_curve(ranks: torch.Tensor | Sequence[int], max_k: int) -> list[float]:
    """[Recall@1, ..., Recall@max_k]."""
    ranks = _check_ranks(ranks)
    return [float((ranks <= k).float().mean()) for k in range(1, max_k + 1)]


def retrieval_summary(ranks: torch.Tensor | Sequence[int], ks: Sequence[int] = (1, 5, 10), curve_k: int = 50) -> dict[str, Any]:
    ranks = _check_ranks(ranks)
    out: dict[str, Any] = {f"recall@{k}": recall_at_k(ranks, k) for k in ks}
    out["mrr"] = mrr(ranks)
    out["n_queries"] = int(ranks.numel())
    out["recall_curve"] = recall_curve(ranks, curve_k)
    return out


# ---- classification ------------------------------------------------------------------------------


def level_accuracy(pred_paths: Sequence[str], gold_paths: Sequence[str]) -> dict[str, Any]:
    """Accuracy at each level of the category path: level i is right when the first i levels agree.

    A record counts at level i only when its gold path has at least i levels. Also reports the
    exact-path accuracy. Levels are compared as written (after stripping), case-sensitively.

    >>> level_accuracy(["A > B > C", "A > X"], ["A > B > D", "A > B"])
    {'level_1': 1.0, 'level_2': 0.5, 'level_3': 0.0, 'full_path': 0.0, 'n': 2}
    """
    if len(pred_paths) != len(gold_paths) or not gold_paths:
        raise ValueError("need one prediction per gold path, and at least one")
    right: dict[int, int] = defaultdict(int)
    total: dict[int, int] = defaultdict(int)
    exact = 0
    for pred, gold in zip(pred_paths, gold_paths):
        p, g = split_category(pred), split_category(gold)
        exact += p == g
        for level in range(1, len(g) + 1):
            total[level] += 1
            right[level] += p[:level] == g[:level]
    out: dict[str, Any] = {f"level_{lv}": right[lv] / total[lv] for lv in sorted(total)}
    out["full_path"] = exact / len(gold_paths)
    out["n"] = len(gold_paths)
    return out


def knn_vote(neighbor_labels: Sequence[Sequence[str]], neighbor_scores: torch.Tensor) -> list[str]:
    """Score-weighted majority vote per row; a tied vote goes to the label of the nearest neighbour among the tied.

    neighbor_labels[q][j] is the label of the j-th nearest neighbour (best first); scores (Q, k).
    """
    out = []
    for labels, scores in zip(neighbor_labels, neighbor_scores.tolist()):
        weight: dict[str, float] = defaultdict(float)
        first_seen: dict[str, int] = {}
        for j, (label, score) in enumerate(zip(labels, scores)):
            weight[label] += score
            first_seen.setdefault(label, j)
        out.append(max(weight, key=lambda lab: (weight[lab], -first_seen[lab])))
    return out


# ---- attributes --------------------------------------------------------------------------------


def attribute_metrics(
    completions: Sequence[str],
    golds: Sequence[Mapping[str, str]],
    options: Sequence[Mapping[str, Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """Micro precision/recall/F1 over attribute-value pairs, per-attribute accuracy, closed-set accuracy.

    - micro-F1: `reward_fns.attributes.attribute_matches` summed over records (the `attribute_f1` reward's
      counts), normalised values (case, units, synonyms).
    - per-attribute accuracy: for each gold attribute name, the share of records whose answer has the
      right value for it (`attribute_hits`).
    - closed-set accuracy: records with `options` scored by `AttributeChoice` (the `attribute_choice`
      reward): the chosen option must equal the gold one. `None` when no record has options.
    - parse_rate: share of completions with a parsable `<answer>` JSON object.
    """
    from reward_fns.attributes import AttributeChoice, attribute_hits, attribute_matches, f1_from_counts
    from reward_fns.parsing import parse_answer

    if len(completions) != len(golds) or not golds:
        raise ValueError("need one completion per gold record, and at least one")
    options = options if options is not None else [{}] * len(golds)
    choice = AttributeChoice()
    tp = n_pred = n_gold = parsed = 0
    hits: dict[str, list[bool]] = defaultdict(list)
    closed: list[float] = []
    for completion, gold, opts in zip(completions, golds, options):
        pred = parse_answer(completion)
        parsed += pred is not None
        t, p, g = attribute_matches(pred, gold)
        tp, n_pred, n_gold = tp + t, n_pred + p, n_gold + g
        for name, hit in attribute_hits(pred, gold).items():
            hits[name].append(hit)
        if opts:
            score = choice.score(completion, dict(gold), dict(opts))
            if score is not None:
                closed.append(score)
    return {
        "micro_f1": f1_from_counts(tp, n_pred, n_gold),
        "precision": tp / n_pred if n_pred else 0.0,
        "recall": tp / n_gold if n_gold else 0.0,
        "per_attribute": {name: sum(v) / len(v) for name, v in sorted(hits.items())},
        "closed_set_accuracy": sum(closed) / len(closed) if closed else None,
        "n_closed_set": len(closed),
        "parse_rate": parsed / len(golds),
        "n_records": len(golds),
    }


def majority_values(attribute_dicts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Each attribute name's most frequent value (ties: the value seen first).

    >>> majority_values([{"sleeve": "long"}, {"sleeve": "short", "neck": "v"}, {"sleeve": "short"}])
    {'sleeve': 'short', 'neck': 'v'}
    """
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for attrs in attribute_dicts:
        for name, value in attrs.items():
            counts[name][value] = counts[name].get(value, 0) + 1
    return {name: max(values, key=values.__getitem__) for name, values in counts.items()}


def majority_attribute_metrics(
    golds: Sequence[Mapping[str, str]],
    options: Sequence[Mapping[str, Sequence[str]]] | None = None,
    reference: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """`attribute_metrics` of the majority-option baseline: every record answered with each of its attributes'
    most frequent value in `reference` (the train split), or among `golds` for names `reference` lacks (a
    slightly optimistic baseline: it has seen the evaluated labels). The floor a model must beat: on a
    closed-set catalog whose values are skewed, always answering the commonest option already scores."""
    table = {**majority_values(golds), **majority_values(reference)}
    completions = [f"<answer>{json.dumps({n: table[n] for n in gold}, ensure_ascii=False)}</answer>" for gold in golds]
    out = attribute_metrics(completions, golds, options)
    from_reference = sum(n in majority_values(reference) for gold in golds for n in gold)
    out["values_from"] = "train split" if from_reference == sum(len(g) for g in golds) else (
        "evaluated records" if not from_reference else "train split, else the evaluated records"
    )
    return out


# ---- pairwise ----------------------------------------------------------------------------------


def pairwise_accuracy(completions: Sequence[str], winners: Sequence[str]) -> dict[str, Any]:
    """Share of A-vs-B pairs whose answer names the labelled winner (`reward_fns.pairwise.PairwiseChoiceReward`,
    so evaluation and the GRPO reward agree); `answered` is the share with a parsable A/B choice.

    >>> pairwise_accuracy(["<answer>A</answer>", "<answer>A</answer>", "no answer"], ["a", "b", "a"])
    {'accuracy': 0.3333333333333333, 'answered': 0.6666666666666666, 'n_pairs': 3}
    """
    from reward_fns.pairwise import PairwiseChoiceReward, parse_choice

    if len(completions) != len(winners) or not winners:
        raise ValueError("need one completion per labelled pair, and at least one")
    scores = PairwiseChoiceReward()(list(completions), winner=list(winners))
    answered = sum(parse_choice(c) in ("a", "b") for c in completions)
    return {"accuracy": sum(s or 0.0 for s in scores) / len(winners), "answered": answered / len(winners), "n_pairs": len(winners)}
