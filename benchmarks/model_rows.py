"""The moon-rl rows of benchmarks/pretrained.py: the base model, `moon-rl sft` with and without reasoning, and the plain
PEFT contrastive loop, each trained on the same rows with the same seed (so the same batch plan and LoRA
initialisation) and scored on the same queries and corpus at each point of its curve.

- `base`: SmolLM2-135M-Instruct as moon-rl embeds it, untouched (`encode(..., reasoning=False)`).
- `sft_input`: configs/sft_smollm2_matching.yaml (pooling "input": the offer's own text, no reasoning).
- `sft_reasoning` (pooling `reasoning_token`, UME-R1's embedding token) and `sft_reasoning_mean` (pooling `reasoning`:
  mean over text + reasoning): the same recipe, and the next-token term on the reasoning (weight 1); traces written
  from each offer's fields (`data_prep.identifier_trace`). Scored three ways at every point: `own` (the vector read
  after the model's own greedy reasoning: what `encode` serves; at --own-points only, generation is the cost),
  `gold` (after the trace it was trained on: the gap between the two is the price of the model's own reasoning),
  and `input` (the same model's no-reasoning vector). The row's value is `own` at its last point.
- `grpo_reasoning`: `moon-rl grpo` with configs/grpo_smollm2_reasoning.yaml (retrieval reward read after each rollout
  + format, InfoNCE on both vectors) from the `sft_reasoning` row's model at --grpo-from steps; its `steps` count
  the SFT steps too, so it is compared with `sft_reasoning` at the same total.
- `plain_contrastive`: benchmarks/sft_vs_plain.py's plain transformers + PEFT loop on moon-rl's batch plan of the same
  seed (abt-buy only: that script is wired to it).
Each row trains in legs (`--resume latest` between them: the recipe's constant schedule makes the legs one run) and is
saved after each point; corpus embeddings and the reasoning they were read after are cached in chunks, so an
interrupted row resumes mid-corpus.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from pathlib import Path

from matching_data import PY, ROOT, Matching, rank_metrics, run

CHUNK = 256  # records per cached embedding chunk
SEED = 0
SFT_ROWS = {
    "sft_input": [],
    "sft_reasoning": ["pooling=reasoning_token", "next_token_weight=1.0"],
    "sft_reasoning_mean": ["pooling=reasoning", "next_token_weight=1.0"],
}


# ---- scoring ----------------------------------------------------------------------------------------------


def cached_encode(model, texts: list[str], cache: Path, desc: str, way: str = "input", gold: list[str] | None = None):
    """moon-rl `encode` in chunks of CHUNK texts, each saved as it finishes (resumable). `way`: "input" (no
    reasoning), "gold" (read after the given `gold` reasoning), "own" (after the model's own greedy reasoning, which is
    saved beside the vectors). Returns (N, D) numpy and the reasoning each vector was read after."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from moon_rl.inference import Query

    cache.mkdir(parents=True, exist_ok=True)
    parts, written = [], []
    n_chunks = math.ceil(len(texts) / CHUNK)
    for k in range(n_chunks):
        file = cache / f"{k:05d}.safetensors"
        if file.is_file():
            with safe_open(str(file), framework="pt") as fh:
                parts.append(fh.get_tensor("emb"))
                written += json.loads((fh.metadata() or {}).get("reasonings", "[]"))
            continue
        chunk = texts[k * CHUNK : (k + 1) * CHUNK]
        t0 = time.time()
        kwargs = {"reasonings": gold[k * CHUNK : (k + 1) * CHUNK]} if way == "gold" else {}
        emb, reasonings = model.encode_with_completions(
            [Query(text=t) for t in chunk], reasoning=way != "input", batch_size=32, progress=False, **kwargs
        )
        save_file({"emb": emb.contiguous()}, str(file), metadata={"reasonings": json.dumps(reasonings)})
        parts.append(emb)
        written += reasonings
        print(f"  {desc}: chunk {k + 1}/{n_chunks} ({len(chunk) / (time.time() - t0):.1f} texts/s)", flush=True)
    return torch.cat(parts).numpy(), written


def score_model(path: Path, data: Matching, cache: Path, way: str = "input") -> dict:
    import moon_rl
    from data_prep.identifier_trace import identifier_trace

    model = moon_rl.load(path)
    gold = None
    if way == "gold":
        trace = lambda i: identifier_trace(data.products[i].title, data.products[i].attributes)  # noqa: E731
        gold = ([trace(i) for i in data.query_ids], [trace(i) for i in data.corpus_ids])
    t0 = time.time()
    queries, q_reasoning = cached_encode(model, data.query_texts, cache / way / "queries", f"{way} queries", way, gold and gold[0])
    corpus, _ = cached_encode(model, data.corpus_texts, cache / way / "corpus", f"{way} corpus", way, gold and gold[1])
    result = rank_metrics(queries @ corpus.T, data.query_groups, data.corpus_groups)
    out = {**result, "kind": model.kind, "encode_seconds": round(time.time() - t0, 1)}
    if way != "input":
        out["reasoning_examples"] = [{"text": t, "reasoning": r} for t, r in list(zip(data.query_texts, q_reasoning))[:5]]
    return out


def score_point(model_dir: Path, data: Matching, cache: Path, ways: list[str], label: str) -> dict:
    """One point of a training row's curve: R@1 / R@10 / MRR of each vector in `ways` (and a few reasoning examples)."""
    point = {}
    for way in ways:
        res = score_model(model_dir, data, cache, way)
        point[way] = {k: res[k] for k in ("R@1", "R@10", "MRR", "encode_seconds")}
        if "reasoning_examples" in res:
            point[way]["reasoning_examples"] = res["reasoning_examples"]
        print(f"  {label} {way}: R@1 {res['R@1']:.3f}  MRR {res['MRR']:.3f}", flush=True)
    return point


# ---- training rows ----------------------------------------------------------------------------------------


def base_model_dir(workdir: Path) -> Path:
    out = workdir / "smollm2-135m-instruct"
    if not (out / "config.json").is_file():
        run([PY, "-m", "moon_rl", "models", "get", "smollm2-135m-instruct", "--out", str(out)])
    return out


def row_base(data: Matching, workdir: Path, name: str) -> dict:
    return score_model(base_model_dir(workdir), data, workdir / name / "emb" / "base")


def sft_catalog(catalog: Path, out: Path) -> Path:
    """The catalog the SFT and GRPO rows train on (`data_prep.title_catalog`: titles, no price attribute)."""
    from data_prep.title_catalog import title_catalog

    return title_catalog(catalog, out)


def sft_dataset(data: Matching, workdir: Path, name: str) -> Path:
    ds = workdir / name / "sft_data"
    if not (ds / "dataset_info.json").is_file():
        catalog = sft_catalog(data.catalog, workdir / name / "sft_catalog")
        run([PY, "-m", "moon_rl", "data", "prepare", "--task", "sft", "--catalog", str(catalog), "--out", str(ds), "--empty-targets"])
    return ds


def row_sft(row: str, data: Matching, workdir: Path, name: str, config: Path, overrides: list[str], steps: list[int],
            own_points: list[int], save, gold_points: list[int] | None = None) -> dict:
    """`moon-rl sft` in legs up to each of `steps`, scored after each leg; the row saved each time (see module doc)."""
    base, ds = base_model_dir(workdir), sft_dataset(data, workdir, name)
    out = workdir / name / f"{row}_run"
    curve_file = workdir / name / f"{row}_curve.json"
    curve = json.loads(curve_file.read_text(encoding="utf-8")) if curve_file.is_file() else []
    reasoning = row != "sft_input"
    sets = [f"seed={SEED}", *SFT_ROWS[row], *overrides]
    cmd: list[str] = []
    for target in steps:
        if any(point["step"] == target for point in curve):
            continue
        cmd = [PY, "-m", "moon_rl", "sft", "--model", str(base), "--data", str(ds), "--out", str(out), "--config", str(config),
               "--set", f"max_steps={target}", *[x for item in sets for x in ("--set", item)]]
        if any(out.glob("checkpoint-*/moon_rl_complete.json")):
            cmd += ["--resume", "latest"]
        t0 = time.time()
        run(cmd)
        point = {"step": target, "train_seconds": round(time.time() - t0, 1)}
        emb = workdir / name / "emb" / f"{row}-step{target}"
        gold = gold_points is None or target in gold_points or target == steps[-1]
        own = target in own_points or target == steps[-1]
        ways = ["input", *(["gold"] if gold else []), *(["own"] if own else [])] if reasoning else ["input"]
        point.update(score_point(out, data, emb, ways, f"{row} step {target}"))
        curve.append(point)
        curve_file.write_text(json.dumps(curve, indent=2) + "\n", encoding="utf-8")
        snapshot(out, workdir / name / f"{row}_step{target}")
        save(summary(row, curve, cmd))
    return summary(row, curve, shlex.join(cmd) if cmd else "(all legs done)")


def snapshot(run_dir: Path, dest: Path) -> None:
    """The run's final artifacts after a leg (adapter, head, tokenizer, run info), kept: a later leg overwrites them,
    and the GRPO row starts from the SFT row at a given step."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for item in run_dir.iterdir():
        if item.is_file() and item.suffix != ".bin":
            shutil.copy2(item, dest / item.name)


def row_grpo(data: Matching, workdir: Path, name: str, config: Path, start: int, steps: list[int], own_points: list[int], save) -> dict:
    """`moon-rl grpo` with configs/grpo_smollm2_reasoning.yaml from the `sft_reasoning` row's model at step `start`,
    in legs up to each of `steps` (GRPO steps), scored like the SFT reasoning rows after each leg."""
    init = workdir / name / f"sft_reasoning_step{start}"
    if not (init / "moon_extras.json").is_file():
        raise SystemExit(f"grpo_reasoning starts from {init}: run the sft_reasoning row up to step {start} first (--sft-steps)")
    ds = workdir / name / "grpo_data"
    if not (ds / "dataset_info.json").is_file():
        catalog = sft_catalog(data.catalog, workdir / name / "sft_catalog")
        run([PY, "-m", "moon_rl", "data", "prepare", "--task", "grpo", "--catalog", str(catalog), "--out", str(ds)])
    out = workdir / name / "grpo_reasoning_run"
    curve_file = workdir / name / "grpo_reasoning_curve.json"
    curve = json.loads(curve_file.read_text(encoding="utf-8")) if curve_file.is_file() else []
    cmd: list[str] = []
    for target in steps:
        if any(point["step"] == start + target for point in curve):
            continue
        cmd = [PY, "-m", "moon_rl", "grpo", "--model", str(init), "--data", str(ds), "--out", str(out), "--config", str(config),
               "--set", f"max_steps={target}", "--set", f"seed={SEED}"]
        if any(out.glob("checkpoint-*/moon_rl_complete.json")):
            cmd += ["--resume", "latest"]
        t0 = time.time()
        run(cmd)
        point = {"step": start + target, "grpo_steps": target, "train_seconds": round(time.time() - t0, 1)}
        emb = workdir / name / "emb" / f"grpo_reasoning-step{target}"
        ways = ["input", "gold", *(["own"] if target in own_points or target == steps[-1] else [])]
        point.update(score_point(out, data, emb, ways, f"grpo_reasoning step {start}+{target}"))
        curve.append(point)
        curve_file.write_text(json.dumps(curve, indent=2) + "\n", encoding="utf-8")
        save({**summary("grpo_reasoning", curve, cmd), "sft_steps": start})
    return {**summary("grpo_reasoning", curve, shlex.join(cmd) if cmd else "(all legs done)"), "sft_steps": start}


def summary(row: str, curve: list[dict], cmd) -> dict:
    """The row's value: the served vector at the last point (own reasoning for the reasoning rows)."""
    last = curve[-1]
    served = last.get("own") or last["input"]
    return {"R@1": served["R@1"], "R@10": served["R@10"], "MRR": served["MRR"], "steps": last["step"],
            "wall_s": round(sum(p["train_seconds"] for p in curve), 1), "served": "own reasoning" if "own" in last else "input",
            "settings": SFT_ROWS.get(row, []), "seed": SEED, "curve": curve,
            "command": cmd if isinstance(cmd, str) else shlex.join(cmd)}


def row_plain(data: Matching, workdir: Path, name: str, steps: list[int]) -> dict:
    """benchmarks/sft_vs_plain.py's plain loop (and its moon contender) at seed SEED, scored at `steps`."""
    if name != "abt-buy":
        raise SystemExit("plain_contrastive: benchmarks/sft_vs_plain.py is wired to abt-buy only")
    results = workdir / name / "plain_vs_moon.json"
    cmd = [PY, str(ROOT / "benchmarks" / "sft_vs_plain.py"), "--contenders", "plain,moon", "--points", ",".join(map(str, steps)),
           "--seeds", str(SEED), "--workdir", str(workdir / name / "plain_vs_moon"), "--results", str(results)]
    run(cmd)
    record = json.loads(results.read_text(encoding="utf-8"))["runs"]["plain,moon"]["seeds"][str(SEED)]
    points = sorted(record["points"].items(), key=lambda kv: int(kv[0]))
    curve = [{"step": int(p), "input": {k: v["plain"][k] for k in ("R@1", "R@10", "MRR")}, "moon_sft_input_R@1": v["moon"]["R@1"],
              "train_seconds": v["train_wall_s"]} for p, v in points]
    last = curve[-1]["input"]
    plain_s = sum(record["times"]["wall"]["plain"])
    return {**last, "steps": curve[-1]["step"], "wall_s": round(plain_s, 1), "seed": SEED, "curve": curve, "command": shlex.join(cmd)}


if __name__ == "__main__":
    sys.exit("run benchmarks/pretrained.py")
