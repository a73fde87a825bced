"""Write what `moon-rl eval` measured: `metrics.json`, a Markdown table `report.md` and PNG plots.

Everything is drawn from the metrics dict alone (plus training logs found in the model folders), so a
report can be rebuilt from a saved `metrics.json`. Models sit side by side in columns, the first being the
model under test and the rest its `--baseline`s; the best value of each row is in bold. Text baselines
(`--baseline bm25`, `tfidf`, `tfidf_char`, a sentence-transformers folder; `metrics["baselines"]` entries with
a "retrieval" key) are further columns of the retrieval table, the majority option one of the attribute table.
Every capped sample is stated under "Sampling" (size, population, seed, how drawn).

Plots (matplotlib, Agg backend, no display needed):
- `recall_at_k.png`: Recall@K for K = 1..curve_k, one panel per retrieval setting, one line per model.
- `training_<model>.png`: loss and reward curves from `trainer_state.json` (`log_history`) when the model
  folder (or, for a checkpoint, its run folder) has one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]], numeric_from: int) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        nums = [v for v in row[numeric_from:] if isinstance(v, float)]
        best = max(nums) if len(nums) > 1 and len(set(nums)) > 1 else None  # all equal: nothing to highlight
        cells = [str(v) for v in row[:numeric_from]]
        for v in row[numeric_from:]:
            text = _fmt(v)
            cells.append(f"**{text}**" if best is not None and isinstance(v, float) and v == best else text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _get(results: dict, *keys: str) -> Any:
    for key in keys:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def _ordered_keys(models: dict, *path: str) -> list[str]:
    seen: list[str] = []
    for res in models.values():
        for key in _get(res, *path) or {}:
            if key not in seen:
                seen.append(key)
    return seen


def retrieval_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """The retrieval table's columns: the models, then the text baselines (same queries, same corpus)."""
    baselines = {n: b for n, b in metrics.get("baselines", {}).items() if "retrieval" in b}
    return {**metrics["models"], **baselines}


def sampling_lines(sampling: dict[str, Any] | None) -> list[str]:
    """The "Sampling" section: what each cap kept, or that nothing was capped."""
    if not sampling:
        return []
    samples = sampling.get("samples", {})
    capped = {k: v for k, v in samples.items() if v.get("n", 0) < v.get("of", 0)}
    out = ["## Sampling", ""]
    if not capped:
        return out + ["No sample: every record of each evaluated set was used (no cap reached).", ""]
    out += [f"Random samples drawn with seed {sampling.get('seed')} (`sample_seed`), not the first records in file order:", ""]
    out += [f"- {what}: {v['n']} of {v['of']} ({v['how']})" for what, v in capped.items()]
    whole = [f"{what} ({v['of']})" for what, v in samples.items() if what not in capped]
    if whole:
        out.append(f"- all of: {', '.join(whole)}")
    return out + ["", "Every row of a table is scored on the same sample. `--max-products 0` (and `--max-queries 0`, `--max-attribute-records 0`) lifts a cap.", ""]


def markdown_report(metrics: dict[str, Any], plots: dict[str, str]) -> str:
    models: dict[str, Any] = metrics["models"]
    title = f"# moon-rl eval: {metrics.get('data', '')}"
    if metrics.get("held_out") is False:  # said first: every number below includes products the model trained on
        title += " (no held-out split: the whole catalog, training products included, was evaluated)"
    out = [title, ""]
    out += [f"- **{n}**: `{m.get('path')}` ({m.get('kind')})" for n, m in models.items()]
    for name, b in metrics.get("baselines", {}).items():
        if "retrieval" in b:
            out.append(f"- **{name}**: text baseline `{b.get('path')}`: {b.get('description', b.get('kind'))}, reading each record's plain text (title + brand / model number it lacks; a query's text)")
    for note in metrics.get("notes", []):
        out.append(f"- note: {note}")
    out += ["", "Best value per row in bold. Ranks use pessimistic ties (a distractor with the same score ranks first).", ""]
    out += sampling_lines(metrics.get("sampling"))

    columns = retrieval_columns(metrics)
    names = list(columns)
    settings = _ordered_keys(columns, "retrieval")
    if settings:
        out += ["## Retrieval", ""]
        rows = []
        for setting in settings:
            skipped = {n: _get(columns[n], "retrieval", setting, "skipped") for n in names}
            scored = not all(skipped.values())
            for metric in ("recall@1", "recall@5", "recall@10", "mrr", "n_queries") if scored else ():
                vals = [_get(columns[n], "retrieval", setting, metric) for n in names]
                if metric == "n_queries":
                    vals = [int(v) if v is not None else None for v in vals]
                rows.append([setting, metric, *vals])
            reasons = {r for r in skipped.values() if r}
            if reasons:
                rows.append([setting, "skipped", *[skipped[n] or "" for n in names]])
        out += _table(["setting", "metric", *names], rows, 2)
        if any(str(v).startswith("n/a") for v in (_get(columns[n], "retrieval", st, "skipped") for n in names for st in settings)):
            out += ["", "n/a: text baselines read text only, so a setting whose queries are images has no score for them."]
        if "recall_at_k" in plots:
            out += ["", f"![Recall@K]({plots['recall_at_k']})"]
        out.append("")

    names = list(models)
    methods = _ordered_keys(models, "classification")
    if methods:
        out += ["## Classification (accuracy by category level)", ""]
        rows = []
        for method in methods:
            levels = [k for k in _ordered_keys(models, "classification", method) if k.startswith("level_") or k == "full_path"]
            for level in levels:
                rows.append([method, level, *[_get(models[n], "classification", method, level) for n in names]])
            for n in names:
                reason = _get(models[n], "classification", method, "skipped")
                if reason:
                    rows.append([method, "skipped", *[reason if m == n else "" for m in names]])
        out += _table(["method", "level", *names], rows, 2) + [""]

    if any("attributes" in m for m in models.values()):
        out += ["## Attributes", ""]
        # Model-free baselines (the majority option, on the same records) sit in columns after the models.
        columns = {**models, **{b: r for b, r in metrics.get("baselines", {}).items() if "attributes" in r}}
        cols = list(columns)
        rows = [
            [metric, *[_get(columns[n], "attributes", metric) for n in cols]]
            for metric in ("micro_f1", "precision", "recall", "closed_set_accuracy", "parse_rate", "n_records")
        ]
        rows += [[f"accuracy: {a}", *[_get(columns[n], "attributes", "per_attribute", a) for n in cols]] for a in _ordered_keys(columns, "attributes", "per_attribute")]
        out += _table(["metric", *cols], rows, 1) + [""]
        if len(cols) > len(names):
            out += ["The majority option answers each attribute with its commonest value in the train split.", ""]

    if any("pairwise" in m for m in models.values()):
        out += ["## Pairwise (A vs B)", ""]
        columns = {**models, **{b: r for b, r in metrics.get("baselines", {}).items() if "pairwise" in r}}
        rows = [[metric, *[_get(columns[n], "pairwise", metric) for n in columns]] for metric in ("accuracy", "answered", "n_pairs")]
        out += _table(["metric", *columns], rows, 1) + [""]
        out += ["accuracy: share of pairs whose answer names the labelled winner (the `pairwise_choice` reward).", ""]

    training = {k[len("training/") :]: v for k, v in plots.items() if k.startswith("training/")}
    if training:
        out += ["## Training curves", ""]
        out += [f"### {name}\n\n![training {name}]({path})\n" for name, path in training.items()]
    return "\n".join(out).rstrip() + "\n"


def plot_recall_curves(metrics: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = retrieval_columns(metrics)
    settings = [s for s in _ordered_keys(models, "retrieval") if any(_get(m, "retrieval", s, "recall_curve") for m in models.values())]
    if not settings:
        return False
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 3.6), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        for name, res in models.items():
            curve = _get(res, "retrieval", setting, "recall_curve")
            if curve:
                ax.plot(range(1, len(curve) + 1), curve, label=name, marker="." if len(curve) < 30 else None)
        ax.set_title(setting)
        ax.set_xlabel("K")
        ax.set_ylabel("Recall@K")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def find_trainer_state(model_dir: str | Path) -> Path | None:
    """trainer_state.json of a run folder or checkpoint (a checkpoint's run folder as fallback)."""
    model_dir = Path(model_dir)
    for candidate in (model_dir / "trainer_state.json", model_dir.parent / "trainer_state.json"):
        if candidate.is_file():
            return candidate
    return None


def plot_training_curves(model_dir: str | Path, path: Path, title: str) -> bool:
    """Loss-like and reward-like series of `log_history` against step; False when there is nothing to plot."""
    state_file = find_trainer_state(model_dir)
    if state_file is None:
        return False
    try:
        history = json.loads(state_file.read_text(encoding="utf-8")).get("log_history", [])
    except (json.JSONDecodeError, OSError):
        return False
    series: dict[str, list[tuple[float, float]]] = {}
    for entry in history:
        step = entry.get("step")
        for key, value in entry.items():
            if step is None or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if ("loss" in key or "reward" in key) and key != "train_loss":  # train_loss: one end-of-run average
                series.setdefault(key, []).append((step, float(value)))
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {"loss": sorted(k for k in series if "reward" not in k), "reward": sorted(k for k in series if "reward" in k)}
    groups = {k: v for k, v in groups.items() if v}
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.6), squeeze=False)
    for ax, (kind, keys) in zip(axes[0], groups.items()):
        for key in keys[:8]:  # a legend of 20 reward columns helps nobody
            steps, values = zip(*series[key])
            ax.plot(steps, values, label=key)
        ax.set_title(f"{title}: {kind}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(metrics: dict[str, Any], out_dir: str | Path, model_dirs: dict[str, str | Path] | None = None) -> dict[str, Path]:
    """Write metrics.json, the plots and report.md into `out_dir`; returns the files written by name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plots: dict[str, str] = {}
    if plot_recall_curves(metrics, out_dir / "recall_at_k.png"):
        plots["recall_at_k"] = "recall_at_k.png"
    for name, model_dir in (model_dirs or {}).items():
        file = f"training_{_slug(name)}.png"
        if plot_training_curves(model_dir, out_dir / file, name):
            plots[f"training/{name}"] = file
    metrics = {**metrics, "plots": plots}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(markdown_report(metrics, plots), encoding="utf-8")
    written["metrics"] = out_dir / "metrics.json"
    written["report"] = out_dir / "report.md"
    written.update({k: out_dir / v for k, v in plots.items()})
    return written
