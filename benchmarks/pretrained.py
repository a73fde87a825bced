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
- `base`: SmolLM2-135M-Instruct as moon-rl embeds it (`moon_rl.load(base).encode(..., reasoning=False)`).
- `sft`: `moon-rl sft` on the train split (LoRA, contrastive term on, configs/sft_smollm2_matching.yaml);
  `curve` records R@1 at each saved checkpoint.
Each row's result is written to benchmarks/results/pretrained.json as soon as it finishes (with the command
that reproduces it); a rerun skips rows already there (`--redo ROW` recomputes one). Corpus embeddings of the
neural rows are cached in chunks under --workdir, so an interrupted row resumes mid-corpus.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
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
MODEL_ROWS = ["base", "sft"]
PY = sys.executable
CHUNK = 512  # corpus records per cached embedding chunk


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


# ---- data ---------------------------------------------------------------------------------------------


def prepare_catalog(src: Path, workdir: Path) -> Path:
    out = workdir / src.name / "catalog"
    if not (out / "products.jsonl").is_file():
        run([PY, "-m", "moon_rl", "data", "prepare", "--source", "matching", "--input", str(src), "--out", str(out)])
    return out


def offer_text(product) -> str:
    """Title plus brand / model number when the title does not already contain them: moon-rl's own embedding text
    (`data_prep.formats.embedding_text`), read by every row so that no row sees more than another."""
    from data_prep.formats import embedding_text

    return embedding_text(product.title, product.attributes)


def split_ids(catalog: Path, name: str) -> list[str]:
    path = catalog / "splits" / f"{name}.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Matching:
    """Queries, corpus and relevance of one prepared matching catalog, plus train / valid pairs."""

    def __init__(self, catalog: Path):
        from data_prep.schema import load_catalog

        self.catalog = catalog
        self.products = {p.id: p for p in load_catalog(catalog)}
        self.query_ids = split_ids(catalog, "query")
        self.corpus_ids = split_ids(catalog, "corpus")
        self.query_texts = [offer_text(self.products[i]) for i in self.query_ids]
        self.corpus_texts = [offer_text(self.products[i]) for i in self.corpus_ids]
        self.query_groups = [self.products[i].group_id for i in self.query_ids]
        self.corpus_groups = [self.products[i].group_id for i in self.corpus_ids]

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """(A text, B text) for every A and B offer of one group within `split` (positives for training)."""
        by_group: dict[str, dict[str, list[str]]] = {}
        for pid in split_ids(self.catalog, split):
            side = pid.split("-", 1)[0]
            by_group.setdefault(self.products[pid].group_id, {}).setdefault(side, []).append(pid)
        out = []
        for members in by_group.values():
            for a in members.get("A", []):
                for b in members.get("B", []):
                    out.append((offer_text(self.products[a]), offer_text(self.products[b])))
        return out

    def valid_task(self) -> tuple[list[str], list[str]]:
        """Valid-split A offers with a B match, and their groups (for choosing epochs; corpus stays all of B)."""
        groups = {self.products[p].group_id for p in split_ids(self.catalog, "valid") if p.startswith("B-")}
        ids = [p for p in split_ids(self.catalog, "valid") if p.startswith("A-") and self.products[p].group_id in groups]
        return [offer_text(self.products[i]) for i in ids], [self.products[i].group_id for i in ids]


# ---- metrics --------------------------------------------------------------------------------------------


def rank_metrics(scores, query_groups: list[str], corpus_groups: list[str]) -> dict:
    """scores (Q, N) numpy/torch -> R@1, R@10, MRR over queries with at least one relevant corpus item."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(corpus_groups)
    ranks = []
    for q, group in enumerate(query_groups):
        relevant = groups == group
        if not relevant.any():
            continue
        best = scores[q][relevant].max()
        ranks.append(int((scores[q][~relevant] >= best).sum()) + 1)  # pessimistic ties
    ranks = np.asarray(ranks)
    return {"R@1": float((ranks <= 1).mean()), "R@10": float((ranks <= 10).mean()), "MRR": float((1.0 / ranks).mean()), "n": int(ranks.size)}


def dense_scores(q, c):
    import numpy as np

    q, c = np.asarray(q, dtype=np.float32), np.asarray(c, dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    c /= np.linalg.norm(c, axis=1, keepdims=True).clip(1e-12)
    return q @ c.T


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


# ---- model rows (moon-rl) ----------------------------------------------------------------------------------


def cached_encode(model, texts: list[str], cache: Path, desc: str):
    """moon-rl `encode(reasoning=False)` in chunks of CHUNK texts, each saved as it finishes (resumable)."""
    import torch
    from safetensors.torch import load_file, save_file

    from moon_rl.inference import Query

    cache.mkdir(parents=True, exist_ok=True)
    parts = []
    n_chunks = math.ceil(len(texts) / CHUNK)
    for k in range(n_chunks):
        file = cache / f"{k:05d}.safetensors"
        if file.is_file():
            parts.append(load_file(str(file))["emb"])
            continue
        chunk = texts[k * CHUNK : (k + 1) * CHUNK]
        t0 = time.time()
        emb = model.encode([Query(text=t) for t in chunk], reasoning=False, batch_size=32, progress=False)
        save_file({"emb": emb.contiguous()}, str(file))
        parts.append(emb)
        print(f"  {desc}: chunk {k + 1}/{n_chunks} ({len(chunk) / (time.time() - t0):.1f} texts/s)", flush=True)
    return torch.cat(parts).numpy()


def score_model(path: Path, data: Matching, cache: Path) -> dict:
    import moon_rl

    model = moon_rl.load(path)
    t0 = time.time()
    queries = cached_encode(model, data.query_texts, cache / "queries", "queries")
    corpus = cached_encode(model, data.corpus_texts, cache / "corpus", "corpus")
    result = rank_metrics(queries @ corpus.T, data.query_groups, data.corpus_groups)
    return {**result, "kind": model.kind, "encode_seconds": round(time.time() - t0, 1)}


def base_model_dir(workdir: Path) -> Path:
    out = workdir / "smollm2-135m-instruct"
    if not (out / "config.json").is_file():
        run([PY, "-m", "moon_rl", "models", "get", "smollm2-135m-instruct", "--out", str(out)])
    return out


def row_base(data: Matching, workdir: Path, name: str) -> dict:
    return score_model(base_model_dir(workdir), data, workdir / name / "emb" / "base")


def sft_catalog(catalog: Path, out: Path) -> Path:
    """The catalog the SFT row trains on: the same records and splits, prompts with the offer's title only (no
    description: it doubles the tokens of every row, and no baseline reads it either) and no `price` attribute
    (never in a title: its trace line would teach the model to guess prices)."""
    if (out / "products.jsonl").is_file():
        return out
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(catalog / "splits", out / "splits", dirs_exist_ok=True)
    shutil.copyfile(catalog / "catalog.json", out / "catalog.json")
    lines = []
    for line in (catalog / "products.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        record["description"] = None
        record["attributes"] = {k: v for k, v in (record.get("attributes") or {}).items() if k != "price"}
        lines.append(json.dumps(record, ensure_ascii=False))
    (out / "products.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def row_sft(data: Matching, workdir: Path, name: str, config: Path, overrides: list[str], steps: list[int], save) -> dict:
    """`moon-rl data prepare --task sft` + `moon-rl sft` in legs of a few steps (`--resume latest` between them;
    the recipe's schedule is constant, so the legs train exactly as one run), scoring R@1 after each leg and
    saving the row each time: an interrupted benchmark keeps the curve so far and resumes at the next leg."""
    base = base_model_dir(workdir)
    ds = workdir / name / "sft_data"
    if not (ds / "dataset_info.json").is_file():
        catalog = sft_catalog(data.catalog, workdir / name / "sft_catalog")
        run([PY, "-m", "moon_rl", "data", "prepare", "--task", "sft", "--catalog", str(catalog), "--out", str(ds), "--empty-targets"])
    out = workdir / name / "sft_run"
    curve_file = workdir / name / "sft_curve.json"
    curve = json.loads(curve_file.read_text(encoding="utf-8")) if curve_file.is_file() else []
    cmd = []
    for target in steps:
        if any(point["step"] == target for point in curve):
            continue
        cmd = [PY, "-m", "moon_rl", "sft", "--model", str(base), "--data", str(ds), "--out", str(out), "--config", str(config),
               "--set", f"max_steps={target}", *[x for item in overrides for x in ("--set", item)]]
        if any(out.glob("checkpoint-*/moon_rl_complete.json")):
            cmd += ["--resume", "latest"]
        t0 = time.time()
        run(cmd)
        train_s = time.time() - t0
        res = score_model(out, data, workdir / name / "emb" / f"sft-step{target}")
        curve.append({"step": target, "R@1": res["R@1"], "R@10": res["R@10"], "MRR": res["MRR"], "train_seconds": round(train_s, 1)})
        curve_file.write_text(json.dumps(curve, indent=2) + "\n", encoding="utf-8")
        print(f"  sft step {target}: R@1 {res['R@1']:.3f}  MRR {res['MRR']:.3f}", flush=True)
        save({**res, "step": target, "curve": curve, "command": shlex.join(cmd)})
    last = curve[-1]
    return {"R@1": last["R@1"], "R@10": last["R@10"], "MRR": last["MRR"], "step": last["step"], "curve": curve,
            "command": shlex.join(cmd) if cmd else "(all legs done)"}


# ---- driver ------------------------------------------------------------------------------------------------


def run(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--matching", type=Path, action="append", help="Magellan-layout folder (repeatable); default abt-buy, walmart-amazon")
    parser.add_argument("--rows", default=",".join(BASELINE_ROWS + MODEL_ROWS), help="comma-separated rows to run")
    parser.add_argument("--redo", action="append", default=[], help="recompute this row even if it is in the results")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "pretrained")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--sft-config", type=Path, default=ROOT / "configs" / "sft_smollm2_matching.yaml")
    parser.add_argument("--sft-set", action="append", default=[], help="KEY=VALUE override for the sft row")
    parser.add_argument("--sft-steps", type=lambda v: [int(x) for x in v.split(",")], default=[10, 20, 30, 40, 60, 80, 100],
                        help="steps after which the sft row is scored (its curve), comma-separated")
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
            elif row == "sft":
                def partial(d, name=name, header=header, src=src):
                    d = {**d, "partial": True, "machine": machine_info(load)}
                    save_row(args.out, name, header, "sft", round(d["R@1"], 4), d)

                detail = row_sft(data, args.workdir, name, args.sft_config, args.sft_set, args.sft_steps, partial)
            else:
                raise SystemExit(f"unknown row {row!r}; rows: {BASELINE_ROWS + MODEL_ROWS}")
            detail.update(seconds=round(time.time() - t0, 1), machine=machine_info(load))
            detail.setdefault("command", shlex.join([PY, "benchmarks/pretrained.py", "--matching", str(src), "--rows", row, "--redo", row]))
            save_row(args.out, name, header, row, round(detail["R@1"], 4), detail)
            print(f"  {row}: R@1 {detail['R@1']:.3f}  R@10 {detail['R@10']:.3f}  MRR {detail['MRR']:.3f}  ({detail['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
