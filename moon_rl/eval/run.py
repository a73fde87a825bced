"""`moon-rl eval`: evaluate a model (and baselines) on a catalog and write metrics.json, report.md and plots.

    moon-rl eval --model runs/grpo --data data/synth --out runs/grpo/eval \
        --baseline runs/tiny-vl --baseline runs/sft --baseline bm25 --max-products 300

or `run_eval(EvalConfig(model=..., data=..., out=...))`. Each model is loaded in turn (one in memory at a
time), the tasks in `moon_rl.eval.tasks` run on the same products, and `moon_rl.eval.report` writes the
side-by-side report. A base model given as `--model` or `--baseline` is the zero-shot baseline (mean
pooling, no head; see `moon_rl.inference`). `--baseline bm25 | tfidf | tfidf_char | ST_FOLDER` (a
sentence-transformers folder) adds a text-baseline row to the retrieval table instead
(`moon_rl.eval.text_baselines`), scored on the same queries and corpus.

Cost on CPU is dominated by generating the reasoning of every encoded record (`max_new_tokens` each):
`max_products`, `max_queries` and `max_attribute_records` bound how many records are encoded, and
`reasoning=False` / `query_reasoning=False` skip generation for products / queries and category names.
A cap draws a random sample with `sample_seed` (never the first N in file order), 0 means no cap, and
metrics.json / report.md state every sample (`tasks.sampling_summary`).
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError


@dataclasses.dataclass
class EvalConfig:
    model: str = ""
    data: str = ""
    out: str = ""
    tasks: list[str] = dataclasses.field(default_factory=lambda: ["retrieval", "classification", "attributes"])
    baselines: list[str] = dataclasses.field(default_factory=list)
    base_model: str | None = None  # override the base model recorded in adapters
    device: str = "cpu"
    dtype: str = "auto"
    trust_remote_code: bool = False  # let model folders run their own code (--trust-remote-code)
    overwrite_output: bool = False  # write into a non-empty `out` that holds no earlier moon-rl output (--overwrite-output)
    batch_size: int = 8
    max_new_tokens: int | None = None  # default: the run's max_completion_length, else 128
    reasoning: bool = True  # generate reasoning before embedding products (the trained path)
    query_reasoning: bool = True  # same for text/image queries and category names
    max_products: int = 500  # corpus (test split) and k-NN memory (train split) caps, whole groups; 0: no cap
    max_queries: int = 200  # per retrieval setting; 0: no cap
    max_attribute_records: int = 100  # 0: no cap
    sample_seed: int = 0  # seeds every capped sample (random whole groups / random queries and records)
    knn_k: int = 5
    chunk_size: int = 8192  # corpus rows scored at once (see moon_rl.eval.metrics)
    search_backend: str = "auto"  # exact top-k (classification): auto (faiss when installed) | faiss | torch, moon_rl.eval.search
    ks: list[int] = dataclasses.field(default_factory=lambda: [1, 5, 10])
    curve_k: int = 50
    progress: bool = True

    def __post_init__(self) -> None:
        from moon_rl.eval.tasks import TASKS

        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise MoonError(f"--tasks: unknown task(s) {bad}; choose from {', '.join(TASKS)}")
        for name in ("batch_size", "knn_k", "chunk_size", "curve_k"):
            if getattr(self, name) < 1:
                raise MoonError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_products", "max_queries", "max_attribute_records"):
            if getattr(self, name) < 0:
                raise MoonError(f"{name} must be >= 0 (0: no cap), got {getattr(self, name)}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise MoonError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        from moon_rl.eval.search import resolve_backend

        try:
            resolve_backend(self.search_backend)
        except (ValueError, ImportError) as e:
            raise MoonError(f"search_backend: {e}") from None


def model_names(paths: list[str]) -> list[str]:
    """Short, unique column names: the folder name (run/checkpoint-N for checkpoints), '#2' for repeats."""
    names: list[str] = []
    for p in paths:
        path = Path(p)
        name = f"{path.parent.name}/{path.name}" if path.name.startswith("checkpoint-") else (path.name or str(path))
        base, k = name, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def evaluate_model(path: str, data, cfg: EvalConfig) -> dict[str, Any]:
    from moon_rl.eval.tasks import TaskRunner
    from moon_rl.inference import load

    start = time.perf_counter()
    model = load(path, device=cfg.device, base_model=cfg.base_model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    try:
        results = TaskRunner(model, data, cfg).run(cfg.tasks)
        info = {"path": str(path), "source": model.source, "kind": model.kind, "embedding_dim": model.embedding_dim}
    finally:
        del model
        gc.collect()
    return {**info, **results, "seconds": round(time.perf_counter() - start, 2)}


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate `cfg.model` and every baseline; write the report to `cfg.out`. Returns the metrics dict."""
    from moon_rl.eval.report import write_report
    from moon_rl.eval.tasks import load_eval_data

    if not cfg.model or not cfg.data or not cfg.out:
        raise MoonError("eval needs --model, --data and --out")
    from moon_rl.eval.text_baselines import baseline_kind, check_baseline

    kinds = {b: baseline_kind(b) for b in cfg.baselines}  # None: a model moon-rl loads
    paths = [cfg.model, *[b for b in cfg.baselines if kinds[b] is None]]
    texts = [b for b in cfg.baselines if kinds[b] is not None]
    for p in [*paths, *texts]:
        if kinds.get(p) != "lexical" and not Path(p).expanduser().exists():
            raise MoonError(
                f"model {p} does not exist (--model / --baseline take local folders; --baseline also takes "
                "bm25, tfidf, tfidf_char or a sentence-transformers folder)"
            )
    if texts and "retrieval" not in cfg.tasks:
        raise MoonError(f"--baseline {texts[0]} is a retrieval baseline; add retrieval to --tasks (now {','.join(cfg.tasks)})")
    for b in texts:
        check_baseline(b, kinds[b])
    if "pairwise" in cfg.tasks:  # reads a pairs file, not a catalog (moon_rl/eval/pairwise.py)
        from data_prep.pairwise import check_pairs_output
        from moon_rl.eval.pairwise import run_pairwise_eval
        from moon_rl.file_checks import check_fresh_output, check_model_input, check_output

        # As for a catalog: the output never replaces the pairs file, nor goes into the folders of its images; a new
        # folder beside the file is fine. (A wrong --tasks or a --data that is no file: run_pairwise_eval says so first.)
        if cfg.tasks == ["pairwise"] and Path(cfg.data).expanduser().is_file():
            pw_models = {"--model" if i == 0 else f"--baseline #{i}": p for i, p in enumerate(paths)}
            check_pairs_output(cfg.out, cfg.data, flag="--data")
            check_output(cfg.out, pw_models, inside_ok=tuple(pw_models))
            check_fresh_output(cfg.out, allow=cfg.overwrite_output)
            for p in paths:
                check_model_input(p, cfg.base_model)

        return run_pairwise_eval(cfg, paths, model_names(paths))
    from data_prep.images import check_record_images
    from moon_rl.file_checks import check_fresh_output, check_model_input, check_output

    # Outputs never replace inputs: not into the catalog; into a run folder (`--out RUN/eval`) is fine.
    folders = [*paths, *[b for b in texts if kinds[b] != "lexical"]]
    models = {"--model" if i == 0 else f"--baseline #{i}": p for i, p in enumerate(folders)}
    check_output(cfg.out, {"--data": cfg.data, **models}, inside_ok=tuple(models))
    check_fresh_output(cfg.out, allow=cfg.overwrite_output)
    for p in folders:
        check_model_input(p, cfg.base_model)
    data = load_eval_data(cfg.data, cfg.max_products, cfg.max_queries, seed=cfg.sample_seed)
    held_out = not any("no splits/test.txt" in note for note in data.notes)
    if not held_out:
        print(
            f"warning: {cfg.data} has no splits/test.txt, so every product is evaluated, training ones included; "
            "add splits (`moon-rl data synth` and `data prepare --source` write them) to hold products out",
            file=sys.stderr,
            flush=True,
        )
    # Every image the evaluated records name: inside the catalog, fully decoded (a bad one fails here, named).
    check_record_images([*data.corpus, *data.train, *(data.matching_queries or [])], data.catalog_dir)
    from moon_rl.eval.tasks import sampling_summary

    metrics: dict[str, Any] = {
        "data": str(cfg.data),
        "held_out": held_out,  # False: no splits/test.txt, the corpus is the whole catalog (report.md's first line says so)
        "n_corpus": len(data.corpus),
        "n_train": len(data.train),
        "notes": data.notes,
        "sampling": sampling_summary(data, cfg),
        "config": dataclasses.asdict(cfg),
        "models": {},
        "baselines": {},
    }
    all_names = dict(zip([*paths, *texts], model_names([*paths, *texts])))  # one namespace: no two columns alike
    if texts:
        from moon_rl.eval.text_baselines import evaluate_text_baseline

        # Model-free (or a small encoder), scored on the same query sets: columns of the retrieval table.
        for b in texts:
            print(f"== baseline {all_names[b]} ({b})", flush=True)
            metrics["baselines"][all_names[b]] = evaluate_text_baseline(b, kinds[b], data, cfg)
    if "attributes" in cfg.tasks:
        from moon_rl.eval.tasks import majority_baseline

        # Model-free, so computed once; the report shows it as a column beside the models.
        metrics["baselines"]["majority option"] = {"attributes": majority_baseline(data, cfg.max_attribute_records, cfg.sample_seed)}
    names = [all_names[p] for p in paths]
    for name, path in zip(names, paths):
        print(f"== evaluating {name} ({path})", flush=True)
        metrics["models"][name] = evaluate_model(path, data, cfg)
    from moon_rl.inference import resolve_model_dir

    files = write_report(metrics, cfg.out, {n: resolve_model_dir(p) for n, p in zip(names, paths)})
    metrics["files"] = {k: str(v) for k, v in files.items()}
    return metrics
