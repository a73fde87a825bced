"""RESULTS.md's section for benchmarks/pretrained.py (real offers, full corpora, every row on the same queries) and
benchmarks/smollm2_e2e.py (every command on the real base)."""

from __future__ import annotations


def fmt(v, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


PRETRAINED_ROWS = [
    ("tfidf_word", "TF-IDF, words"), ("tfidf_char", "TF-IDF, char 2-4-grams"), ("bm25", "BM25"),
    ("minilm", "all-MiniLM-L6-v2"), ("minilm_ft", "all-MiniLM-L6-v2 fine-tuned (MNRL, train pairs)"),
    ("base", "SmolLM2-135M-Instruct base (moon-rl encode, mean pooling)"),
    ("plain_contrastive", "plain PEFT contrastive loop (no moon-rl code)"),
    ("sft_input", "moon-rl SFT, pooling input (no reasoning)"),
    ("sft_reasoning", "moon-rl SFT, reasoning embedding (reasoning_token), own reasoning"),
    ("sft_reasoning_mean", "moon-rl SFT, reasoning embedding (reasoning: mean), own reasoning"),
    ("grpo_reasoning", "moon-rl SFT + GRPO (retrieval reward), reasoning_token, own reasoning"),
    ("grpo_reasoning_4x4", "moon-rl SFT + GRPO, first attempt: 4 prompts x 4 rollouts a step"),
]
CURVE_WAYS = (("input", "no-reasoning vector"), ("gold", "after the gold trace"), ("own", "after its own reasoning"))


def pretrained_section(data: dict | None, e2e: dict | None) -> list[str]:
    """benchmarks/pretrained.py: real offers, full corpora, every row on the same queries; smollm2_e2e.py: every command."""
    lines = ["## Real data, real pretrained base (`pretrained`)", ""]
    if not data:
        return lines + ["Not run yet: `python benchmarks/pretrained.py` (long: run it in the background; it resumes).", ""]
    lines += [
        "Query = a table-A offer in a positive test pair, corpus = the whole table B (no cap), hit = an offer of the query's "
        "group; every row reads the same text (title + brand / model number). Command of each row in "
        "`benchmarks/results/pretrained.json` (`details.<row>.command`). A row marked * is a run in progress (its last "
        "scored checkpoint).", "",
    ]
    names = list(data)
    lines += ["| row | " + " | ".join(f"{n} R@1 / MRR" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label in PRETRAINED_ROWS:
        cells = []
        for n in names:
            d = data[n].get("details", {}).get(key)
            cells.append("not run" if d is None else f"{d['R@1']:.3f} / {d['MRR']:.3f}" + (" *" if d.get("partial") else ""))
        if any(c != "not run" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| queries x corpus | " + " | ".join(f"{data[n]['queries']} x {data[n]['corpus']}" for n in names) + " |")
    lines.append("")
    for n in names:
        lines += curve_lines(n, data[n])
        ft = data[n].get("details", {}).get("minilm_ft")
        if ft and ft.get("curve"):
            lines += [f"{n}, fine-tuned MiniLM by epoch (chosen on valid R@1: epoch {ft['epoch']}, {ft['train_pairs']} train pairs): "
                      + ", ".join(f"{p['epoch']}: valid {fmt(p['valid_R@1'])} / test {fmt(p['test']['R@1'])}" for p in ft["curve"]), ""]
    if e2e:
        lines += ["### Every command on SmolLM2-135M-Instruct (`smollm2_e2e`)", "", "| stage | exit | seconds |", "|---|---|---|"]
        lines += [f"| `{s['stage']}` | {s['exit']} | {s['seconds']:.0f} |" for s in e2e.get("stages", [])]
        check = e2e.get("sentence_transformers_check")
        if check:
            lines += ["", f"`SentenceTransformer(EXPORT/st).encode` vs `moon_rl.load(RUN).encode` on {check['texts']} texts: "
                      f"min cosine {check['min_cosine']} (passes 1e-4: {check['passes_1e-4']})."]
        lines.append("")
    return lines




def curve_lines(name: str, data: dict) -> list[str]:
    """Each training row's curve: R@1 by step, of each vector it was scored with, with steps and wall time."""
    lines = []
    for key, label in PRETRAINED_ROWS:
        d = data.get("details", {}).get(key)
        if not d or not d.get("curve") or "step" not in d["curve"][0]:
            continue
        curve = d["curve"]
        lines += [f"{name}, {label}: R@1 by step (16 rows a step, seed {d.get('seed', '?')}; {d.get('steps', '?')} steps, "
                  f"{fmt(d.get('wall_s', 0), 0)} s of training):", "",
                  "| vector | " + " | ".join(str(p["step"]) for p in curve) + " |", "|---" * (len(curve) + 1) + "|"]
        for way, what in CURVE_WAYS:
            if any(way in p for p in curve):
                lines.append(f"| {what} | " + " | ".join(fmt(p[way]["R@1"]) if way in p else "" for p in curve) + " |")
        lines.append("")
    return lines
