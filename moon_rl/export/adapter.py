"""`moon-rl export-adapter`: package a run or checkpoint as a self-contained, verified folder.

    moon-rl export-adapter runs/grpo --out exports/grpo-v1 [--merge] [--force]

OUT holds what `moon_rl.load(OUT)` needs and nothing else:
- adapter_config.json + adapter_model.safetensors (the PEFT LoRA adapter; it names the base model),
- moon_extras.safetensors + moon_extras.json (embedding head, fusion and residual modules),
- the tokenizer / processor files,
- moon_rl.json (the run's kind and training config, plus an `export` block: source, base model, date),
- README.md, a model card with the training config and the latest eval metrics found for the run
  (also copied as eval_metrics.json),
- with `--sentence-transformers`, OUT/st/: the embedder as Transformer + Pooling + Dense + Normalize, loadable by
  `SentenceTransformer(OUT/st)` with no custom code (pooling "input" runs; `moon_rl/export/st.py`), checked against
  `encode(texts, reasoning=False)`; it implies OUT/merged/,
- with `--merge`, OUT/merged/: the LoRA merged into the base weights (`merge_and_unload`), saved as a
  plain transformers model (safetensors + processor) that `from_pretrained` and vLLM load without moon-rl;
  it also carries moon_extras.* so `moon_rl.load(OUT/merged)` embeds like the adapter.

Safety: a non-empty OUT is refused without `--force`; everything is written to a temporary folder next to
OUT and renamed into place at the end (with `--force` the old OUT is replaced only after the new one is
complete and verified), so an interrupted export leaves nothing half-written. Verification reloads the
export from disk and compares embeddings of a few records with the source model (max abs difference,
printed, must be <= `tolerance`). The merged model is compared without generated reasoning
(`reasoning=False`): merging changes float rounding, which may flip a near-tied greedy token, and the
forward-only check isolates the weights.

Departure: residual enhancement works by hooks that plain transformers does not have; a merged model
loaded without moon-rl generates without it (the card says so when the module is present).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError

EVAL_METRICS = "eval_metrics.json"
MERGED_DIR = "merged"
_VERIFY_TEXTS = ("navy striped cotton shirt long sleeve", "round white ceramic mug 350 ml", "black leather tote bag")


@dataclasses.dataclass
class ExportResult:
    out: Path
    source: Path
    base_model: str
    n_records: int
    max_abs_diff: float
    merged: Path | None = None
    merged_max_abs_diff: float | None = None
    sentence_transformers: Path | None = None
    st_cosine_gap: float | None = None


def check_target(out: Path, force: bool, source: str | Path | None = None) -> None:
    """Not a file, not the source (nor inside or around it); --force replaces only an earlier export."""
    from moon_rl.file_checks import check_export_target

    check_export_target(out, force, source)


def find_source(path: str | Path) -> Path:
    """The adapter folder to export: the run/export/checkpoint itself, or a run's newest complete checkpoint."""
    from moon_rl.head.extras import EXTRAS_CONFIG, EXTRAS_WEIGHTS
    from moon_rl.inference import resolve_model_dir

    src = resolve_model_dir(path)
    if not (src / "adapter_config.json").is_file():
        raise MoonError(
            f"{src}: no adapter_config.json, so there is no LoRA adapter to export (a --no-lora run or a plain model "
            "is already a full model: load it with moon_rl.load or transformers as it is)"
        )
    # A run trained with the contrastive term off (and no add-on) has no head: it exports as an adapter that
    # embeds by plain mean pooling, as `moon_rl.load` reads it. Half a head is a broken checkpoint.
    halves = [(src / name).is_file() for name in (EXTRAS_WEIGHTS, EXTRAS_CONFIG)]
    if any(halves) and not all(halves):
        raise MoonError(f"{src}: has only one of {EXTRAS_WEIGHTS} / {EXTRAS_CONFIG}: the embedding head is missing or half-written")
    return src


def verification_records(is_vl: bool, verify_data: str | Path | None, n: int) -> tuple[list, Path | None]:
    """A few records to compare source and export on: products from `verify_data`, else built-in queries."""
    from moon_rl.inference import Query

    if verify_data is not None:
        from data_prep.schema import RecordError, load_catalog

        try:
            products = load_catalog(verify_data)
        except RecordError as err:
            raise MoonError(str(err)) from None
        return products[:n], Path(verify_data)
    records: list[Any] = [Query(text=t) for t in _VERIFY_TEXTS]
    if is_vl:
        from PIL import Image

        records.append(Query(images=[Image.new("RGB", (56, 56), (30, 60, 150))]))
        records.append(Query(text="red plate", images=[Image.new("RGB", (56, 84), (200, 40, 40))]))
    return records[:n], None


def latest_eval_metrics(src: Path) -> Path | None:
    """The newest metrics.json written by `moon-rl eval` in or one level below the source or its run folder."""
    roots = {src, src.parent} if src.name.startswith("checkpoint-") else {src}
    found = []
    for root in roots:
        for candidate in [root / "metrics.json", *root.glob("*/metrics.json")]:
            try:
                if candidate.is_file() and "models" in json.loads(candidate.read_text(encoding="utf-8")):
                    found.append(candidate)
            except (OSError, json.JSONDecodeError):
                continue
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _finalize(tmp: Path, out: Path) -> None:
    """Move the finished export into place; an existing OUT is swapped with it in one step where the OS
    can (`moon_rl.trainers.checkpoints.replace_dir`) and removed last, so OUT is never missing."""
    from moon_rl.trainers.checkpoints import replace_dir

    replace_dir(tmp, out)


def _max_diff(a, b) -> float:
    if a.shape != b.shape:
        raise MoonError(f"export check: embedding shapes differ ({tuple(a.shape)} vs {tuple(b.shape)})")
    return float((a - b).abs().max()) if a.numel() else 0.0


def export_adapter(
    source: str | Path,
    out: str | Path,
    *,
    merge: bool = False,
    sentence_transformers: bool = False,
    force: bool = False,
    base_model: str | None = None,
    verify_data: str | Path | None = None,
    n_verify: int = 4,
    verify_max_new_tokens: int = 16,
    tolerance: float = 1e-4,
    device: str = "cpu",
    progress: bool = True,
) -> ExportResult:
    from moon_rl.head.extras import detached_extras, save_extras
    from moon_rl.inference import RUN_META, load, read_run_meta
    from moon_rl.models.loading import resolve_source

    out = Path(out).expanduser().absolute()
    check_target(out, force, source)
    src = find_source(source)
    model = load(src, device=device, base_model=base_model)  # a missing base or a mismatched head fails here
    base = resolve_source(str(src), base_model).path  # the base actually loaded (after any --base-model)
    records, catalog_dir = verification_records(model.is_vision_language, verify_data, n_verify)
    encode = dict(catalog_dir=catalog_dir, max_new_tokens=verify_max_new_tokens, progress=False)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the export should get normal folder permissions
    try:
        with detached_extras(model.model):
            model.model.save_pretrained(tmp)
        # PEFT writes the base recorded in the source adapter; point the export at the one it was checked against.
        adapter_config = json.loads((tmp / "adapter_config.json").read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = base
        (tmp / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")
        if model.extras is not None:
            save_extras(model.extras, tmp)
        model.processor.save_pretrained(tmp)
        meta = read_run_meta(src)
        meta["base_model"] = base
        meta["export"] = {
            "source": str(src),
            "base_model": base,
            "merged": merge,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / RUN_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        metrics_file = latest_eval_metrics(src)
        if metrics_file is not None:
            shutil.copyfile(metrics_file, tmp / EVAL_METRICS)

        source_emb = model.encode(records, reasoning=True, **encode)
        exported = load(tmp, device=device)
        diff = _max_diff(source_emb, exported.encode(records, reasoning=True, **encode))
        del exported
        if diff > tolerance:
            raise MoonError(f"export check failed: reloaded embeddings differ from the source by {diff:.3g} (> {tolerance})")
        result = ExportResult(out, src, base, len(records), diff)

        if sentence_transformers:
            from moon_rl.export.st import check_exportable

            check_exportable(model.extras, model.is_vision_language)  # before the merge below changes the model
            st_reference = model.encode(list(_VERIFY_TEXTS), reasoning=False, progress=False)
        if merge or sentence_transformers:
            result.merged_max_abs_diff = _write_merged(model, tmp / MERGED_DIR, meta, records, encode, device, tolerance)
            result.merged = out / MERGED_DIR
        if sentence_transformers:
            from moon_rl.head.extras import model_dims
            from moon_rl.export.st import ST_DIR, check_same_vectors, write_sentence_transformers

            write_sentence_transformers(tmp / MERGED_DIR, tmp / ST_DIR, model.extras, model_dims(model.model)[0])
            result.st_cosine_gap = check_same_vectors(tmp / ST_DIR, st_reference, list(_VERIFY_TEXTS))
            result.sentence_transformers = out / ST_DIR
        eval_metrics = json.loads((tmp / EVAL_METRICS).read_text(encoding="utf-8")) if metrics_file else None
        extras_config = model.extras.config_dict() if model.extras is not None else {"pooling": "mean (no head: trained without the contrastive term)"}
        card = model_card(out.name, meta, extras_config, eval_metrics, metrics_file, result)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        _finalize(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def served_vector_line(pooling: str | None) -> str:
    """What `encode` serves for this head, in one line of the model card."""
    from moon_rl.head.pooling import REASONING_POOLINGS

    if pooling in REASONING_POOLINGS:
        return (f"Pooling `{pooling}`: `moon_rl.load(...).encode(records)` first writes the model's attribute reasoning after "
                "each record's text and serves the vector read after it; `encode(records, reasoning=False)` serves the same "
                "model's no-reasoning vector (the mean over the record's text), which `st/` also serves when exported.")
    if pooling == "input":
        return "Pooling `input`: the mean over the record's own text, no reasoning (what `st/` serves when exported)."
    return f"Pooling `{pooling}`: the vector read over the chat prompt and the generated reasoning (`moon_rl.load(...).encode`)."


def _write_merged(model, merged_dir: Path, meta: dict, records: list, encode: dict, device: str, tolerance: float) -> float:
    """Merge LoRA into the base weights, save a plain transformers model, check it loads and embeds the same."""
    from moon_rl.head.extras import save_extras
    from moon_rl.inference import RUN_META, load

    reference = model.encode(records, reasoning=False, **encode)
    merged = model.model.merge_and_unload()  # the base model with W + BA; moon_extras stays on the PeftModel
    merged.save_pretrained(merged_dir)
    model.processor.save_pretrained(merged_dir)
    if model.extras is not None:
        save_extras(model.extras, merged_dir)
    (merged_dir / RUN_META).write_text(json.dumps({**meta, "merged": True}, indent=2) + "\n", encoding="utf-8")
    _check_plain_transformers(merged_dir)
    reloaded = load(merged_dir, device=device)
    diff = _max_diff(reference, reloaded.encode(records, reasoning=False, **encode))
    if diff > max(tolerance, 1e-3):
        raise MoonError(f"merged export check failed: embeddings differ from the adapter's by {diff:.3g}")
    return diff


def _check_plain_transformers(path: Path) -> None:
    """Load the merged folder with transformers alone (as vLLM would read it) and generate a few tokens."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    config = AutoConfig.from_pretrained(path)
    cls = AutoModelForImageTextToText if getattr(config, "vision_config", None) is not None else AutoModelForCausalLM
    plain = cls.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer("check", return_tensors="pt")
    with torch.no_grad():
        plain.generate(**ids, max_new_tokens=2, do_sample=False)


# ---- model card ------------------------------------------------------------------------------------


def _eval_summary(metrics: dict[str, Any], src: Path) -> tuple[str, dict[str, Any]]:
    """(model name, its results) from an eval metrics.json: the entry evaluated from `src`, else the first."""
    models = metrics.get("models", {})
    for name, res in models.items():
        if Path(str(res.get("source", ""))).resolve() == src.resolve():
            return name, res
    name = next(iter(models), "")
    return name, models.get(name, {})


def _metric_lines(res: dict[str, Any]) -> list[str]:
    lines = ["| task | setting | metric | value |", "|---|---|---|---|"]
    for setting, vals in (res.get("retrieval") or {}).items():
        for metric in ("recall@1", "recall@5", "recall@10", "mrr"):
            if isinstance(vals.get(metric), float):
                lines.append(f"| retrieval | {setting} | {metric} | {vals[metric]:.3f} |")
    for method, vals in (res.get("classification") or {}).items():
        for key, value in vals.items():
            if key.startswith("level_") or key == "full_path":
                lines.append(f"| classification | {method} | {key} | {value:.3f} |")
    attrs = res.get("attributes") or {}
    for metric in ("micro_f1", "closed_set_accuracy", "parse_rate"):
        if isinstance(attrs.get(metric), float):
            lines.append(f"| attributes | | {metric} | {attrs[metric]:.3f} |")
    return lines


def model_card(
    name: str,
    meta: dict[str, Any],
    extras_config: dict[str, Any],
    eval_metrics: dict[str, Any] | None,
    metrics_file: Path | None,
    result: ExportResult,
) -> str:
    """README.md of an export: what it is, how to load it, the training config, the latest eval metrics."""
    import yaml

    kind = meta.get("kind", "unknown")
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {result.base_model}",
        "tags: [moon-rl, product-embeddings, multimodal, lora]",
        "---",
        "",
        f"# {name}",
        "",
        f"A moon-rl `{kind}` model exported from `{result.source}`: a LoRA adapter on `{result.base_model}` plus the "
        "embedding head (MOON3.0 recipe: reasoning-aware multimodal product embeddings).",
        "",
        "## Use",
        "",
        "```python",
        "import moon_rl",
        f'model = moon_rl.load("{result.out}")  # base_model="..." if the base lives elsewhere',
        'embeddings = model.encode(products, catalog_dir="path/to/catalog")  # (N, D), L2-normalised',
        "texts = model.generate(products)  # <think>...</think><answer>{...}</answer>",
        "```",
        "",
        "## Files",
        "",
        "- `adapter_config.json`, `adapter_model.safetensors`: PEFT LoRA adapter",
        "- `moon_extras.safetensors`, `moon_extras.json`: embedding head and add-on modules",
        "- `moon_rl.json`: training kind and config, export details",
    ]
    if result.merged is not None:
        lines.append(f"- `{MERGED_DIR}/`: LoRA merged into the base weights; loads with plain `transformers` / vLLM")
    if result.sentence_transformers is not None:
        lines.append("- `st/`: the embedder in the sentence-transformers layout: `SentenceTransformer(\"st\").encode(texts)` (no custom code)")
    lines += ["", "## Embedding", "", served_vector_line(extras_config.get("pooling")), "", "```yaml", yaml.safe_dump(extras_config, sort_keys=False).strip(), "```", ""]
    if extras_config.get("residual_enhancement"):
        lines += [
            "Residual enhancement is on: it runs as hooks added by moon-rl. The merged model loaded without moon-rl "
            "generates without it; use `moon_rl.load` for embeddings.",
            "",
        ]
    config = meta.get("config")
    if config:
        lines += ["## Training config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).strip(), "```", ""]
    if eval_metrics:
        model_name, res = _eval_summary(eval_metrics, result.source)
        lines += [
            "## Latest eval metrics",
            "",
            f"From `{metrics_file}` (model `{model_name}`, data `{eval_metrics.get('data', '?')}`; full file: `{EVAL_METRICS}`).",
            "",
            *_metric_lines(res),
            "",
        ]
    else:
        lines += ["## Eval metrics", "", "None found; run `moon-rl eval --model THIS_FOLDER --data CATALOG --out DIR`.", ""]
    lines += [
        "## Verification",
        "",
        f"Reloaded from disk and compared with the source on {result.n_records} records: max abs difference of "
        f"embeddings {result.max_abs_diff:.3g}.",
    ]
    if result.merged_max_abs_diff is not None:
        lines.append(f"Merged model (forward only, no generated reasoning): max abs difference {result.merged_max_abs_diff:.3g}.")
    if result.st_cosine_gap is not None:
        lines.append(f"sentence-transformers folder vs `moon_rl.load(...).encode(texts, reasoning=False)`: 1 - min cosine {result.st_cosine_gap:.3g}.")
    return "\n".join(lines).rstrip() + "\n"
