"""Evidence on real product data with a real pretrained base: moon-rl vs its base model and the baselines retailers run.

    OMP_NUM_THREADS=2 nohup .venv/bin/python benchmarks/pretrained.py > pretrained.log 2>&1 &    # resumes where it stopped
    .venv/bin/python benchmarks/pretrained.py --rows tfidf_word,bm25 --matching /path/to/my-matching-folder

Matching datasets (`--matching DIR`, Magellan layout: tableA/tableB/train/valid/test.csv; default abt-buy and
walmart-amazon from ../shared/data/real): every row is scored on exactly the same queries and corpus, prepared
by moon-rl itself (`moon-rl data prepare --source matching`): queries = the table-A offers in positive test
pairs (splits/query.txt), corpus = the whole table B (splits/corpus.txt, no cap), a hit = an offer of the
query's group (connected components of the positive pairs). Text of an offer, for every row: its title plus
brand / model number when the title does not already contain them. Rows:
- `tfidf_word`, `tfidf_char` (char_wb 2-4-grams), `bm25` (bm25s, k1=1.5, b=0.75): scikit-learn / bm25s defaults.
- `minilm`: all-MiniLM-L6-v2 as is; `minilm_ft`: fine-tuned with sentence-transformers'
  MultipleNegativesRankingLoss on the positive pairs of the train split (batch 32, lr 2e-5), the epoch (1..4)
  chosen by R@1 on the valid split.
- moon-rl's rows (`base`, `plain_contrastive`, `sft_input`, `sft_reasoning`, `sft_reasoning_mean`): see
  benchmarks/model_rows.py. Each records `steps`, `wall_s`, R@10, MRR and its curve (metric at each scored step).
Each row's result is written to benchmarks/results/pretrained.json as soon as it finishes (with the command
that reproduces it), a training row after each point of its curve; a rerun skips rows already there (`--redo ROW`
recomputes one) and continues a partial one. Corpus embeddings of the neural rows are cached in chunks under
--workdir, so an interrupted row resumes mid-corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "pretrained.json"
REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_MATCHING = [REAL / "product_matching" / "abt-buy", REAL / "product_matching" / "walmart-amazon_1"]
NAMES = {"walmart-amazon_1": "walmart-amazon"}
BASELINE_ROWS = ["tfidf_word", "tfidf_char", "bm25", "minilm", "minilm_ft"]
MODEL_ROWS = ["base", "plain_contrastive", "sft_input", "sft_reasoning", "sft_reasoning_mean", "grpo_reasoning"]

from matching_data import PY, Matching, prepare_catalog, rank_metrics  # noqa: E402  (after sys.path)
from model_rows import SFT_ROWS, row_base, row_grpo, row_plain, row_sft  # noqa: E402


# ---- results file -----------------------------------------------------------------------------------


def load_results(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def save_row(path: Path, dataset: str, header: dict, row: str, value: float, detail: dict) -> None:
    """Read-modify-write one row (atomic rename), so a crash never loses finished rows."""
    results = load_results(path)
    entry = results.setdefault(dataset, {})
    entry.update(header)
    entry.setdefault("rows", {})[row] = value
    entry.setdefault("details", {})[row] = detail
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


# ---- baseline rows ------------------------------------------------------------------------------------------


def row_tfidf(data: Matching, analyzer: str) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer

    kwargs = {"analyzer": "char_wb", "ngram_range": (2, 4)} if analyzer == "char" else {}
    vec = TfidfVectorizer(sublinear_tf=True, **kwargs).fit(data.corpus_texts)
    return rank_metrics((vec.transform(data.query_texts) @ vec.transform(data.corpus_texts).T).toarray(), data.query_groups, data.corpus_groups)


def row_bm25(data: Matching) -> dict:
    import bm25s
    import numpy as np

    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index(bm25s.tokenize(data.corpus_texts, stopwords=None, show_progress=False), show_progress=False)
    scores = np.stack([retriever.get_scores(q) for q in bm25s.tokenize(data.query_texts, stopwords=None, return_ids=False, show_progress=False)])
    return rank_metrics(scores, data.query_groups, data.corpus_groups)


def minilm_dir() -> Path:
    from moon_rl.models.known import known, sentence_transformers_dir

    return sentence_transformers_dir(known("all-minilm-l6-v2"))


def row_minilm(data: Matching) -> dict:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    enc = lambda texts: model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)  # noqa: E731
    return rank_metrics(enc(data.query_texts) @ enc(data.corpus_texts).T, data.query_groups, data.corpus_groups)


def row_minilm_ft(data: Matching, workdir: Path, max_epochs: int = 4) -> dict:
    """MNRL fine-tune on the train pairs, one epoch at a time; keep the epoch with the best valid R@1."""
    import random

    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    pairs = data.pairs("train")
    random.Random(0).shuffle(pairs)
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    loss = MultipleNegativesRankingLoss(model)
    train = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [b for _, b in pairs]})
    valid_q, valid_g = data.valid_task()
    enc = lambda texts: model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)  # noqa: E731
    curve, best = [], None
    for epoch in range(1, max_epochs + 1):
        args = SentenceTransformerTrainingArguments(
            output_dir=str(workdir / "minilm_ft"), num_train_epochs=1, per_device_train_batch_size=32, learning_rate=2e-5,
            warmup_ratio=0.1 if epoch == 1 else 0.0, lr_scheduler_type="constant_with_warmup", seed=epoch,
            batch_sampler="no_duplicates", save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
        )
        SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
        corpus = enc(data.corpus_texts)
        valid = rank_metrics(enc(valid_q) @ corpus.T, valid_g, data.corpus_groups)
        test = rank_metrics(enc(data.query_texts) @ corpus.T, data.query_groups, data.corpus_groups)
        curve.append({"epoch": epoch, "valid_R@1": valid["R@1"], "test": test})
        print(f"  minilm_ft epoch {epoch}: valid R@1 {valid['R@1']:.3f} (n={valid['n']}), test R@1 {test['R@1']:.3f}", flush=True)
        if best is None or valid["R@1"] > best["valid_R@1"]:
            best = curve[-1]
    return {**best["test"], "epoch": best["epoch"], "train_pairs": len(pairs), "valid_queries": len(valid_q), "curve": curve}


# ---- driver ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--matching", type=Path, action="append", help="Magellan-layout folder (repeatable); default abt-buy, walmart-amazon")
    parser.add_argument("--rows", default=",".join(BASELINE_ROWS + MODEL_ROWS), help="comma-separated rows to run")
    parser.add_argument("--redo", action="append", default=[], help="recompute this row even if it is in the results")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "pretrained")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--sft-config", type=Path, default=ROOT / "configs" / "sft_smollm2_matching.yaml")
    parser.add_argument("--sft-set", action="append", default=[], help="KEY=VALUE override for every sft_* row")
    steps = lambda v: [int(x) for x in v.split(",")]  # noqa: E731
    parser.add_argument("--sft-steps", type=steps, default=[30, 60, 90, 120],
                        help="steps after which the training rows are scored (their curve), comma-separated")
    parser.add_argument("--gold-points", type=steps, default=None,
                        help="steps (besides the last) at which the reasoning rows are scored after the gold trace (default: every step)")
    parser.add_argument("--grpo-config", type=Path, default=ROOT / "configs" / "grpo_smollm2_reasoning.yaml")
    parser.add_argument("--grpo-from", type=int, default=120, help="the sft_reasoning step the grpo_reasoning row starts from")
    parser.add_argument("--grpo-steps", type=steps, default=[20, 40], help="GRPO steps after which grpo_reasoning is scored")
    parser.add_argument("--own-points", type=steps, default=[60],
                        help="steps (besides the last) at which the reasoning rows are also scored after their own generated reasoning")
    args = parser.parse_args()

    from machine import machine_info

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for src in args.matching or DEFAULT_MATCHING:
        name = NAMES.get(src.name, src.name)
        catalog = prepare_catalog(src, args.workdir)
        data = Matching(catalog)
        header = {"metric": "R@1", "queries": len(data.query_ids), "corpus": len(data.corpus_ids), "source": str(src)}
        print(f"== {name}: {header['queries']} queries x {header['corpus']} offers", flush=True)
        for row in rows:
            done = load_results(args.out).get(name, {}).get("rows", {})
            details = load_results(args.out).get(name, {}).get("details", {})
            if row in done and row not in args.redo and not details.get(row, {}).get("partial"):
                print(f"  {row}: {done[row]:.3f} (done; --redo {row} to recompute)", flush=True)
                continue
            t0, load = time.time(), os.getloadavg()[0]
            if row in ("tfidf_word", "tfidf_char"):
                detail = row_tfidf(data, row.split("_")[1])
            elif row == "bm25":
                detail = row_bm25(data)
            elif row == "minilm":
                detail = row_minilm(data)
            elif row == "minilm_ft":
                detail = row_minilm_ft(data, args.workdir / name)
            elif row == "base":
                detail = row_base(data, args.workdir, name)
            elif row in SFT_ROWS or row in ("plain_contrastive", "grpo_reasoning"):
                def partial(d, name=name, header=header, row=row):
                    d = {**d, "partial": True, "machine": machine_info(load)}
                    save_row(args.out, name, header, row, round(d["R@1"], 4), d)

                if row == "plain_contrastive":
                    detail = row_plain(data, args.workdir, name, args.sft_steps)
                elif row == "grpo_reasoning":
                    detail = row_grpo(data, args.workdir, name, args.grpo_config, args.grpo_from, args.grpo_steps, args.grpo_steps, partial)
                else:
                    detail = row_sft(row, data, args.workdir, name, args.sft_config, args.sft_set, args.sft_steps, args.own_points, partial, args.gold_points)
            else:
                raise SystemExit(f"unknown row {row!r}; rows: {BASELINE_ROWS + MODEL_ROWS}")
            detail.update(seconds=round(time.time() - t0, 1), machine=machine_info(load))
            detail.setdefault("command", shlex.join([PY, "benchmarks/pretrained.py", "--matching", str(src), "--rows", row, "--redo", row]))
            save_row(args.out, name, header, row, round(detail["R@1"], 4), detail)
            print(f"  {row}: R@1 {detail['R@1']:.3f}  R@10 {detail['R@10']:.3f}  MRR {detail['MRR']:.3f}  ({detail['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
