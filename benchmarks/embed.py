"""`moon-rl embed` + `moon-rl search` on abt-buy with a trained SmolLM2 run, against `moon-rl eval` on the same queries.

    python benchmarks/embed.py --model runs/demo-bench/demo-full/grpo     # writes benchmarks/results/embed.json

Steps (each result saved as it lands; a step already in embed.json is skipped unless --redo):
1. `r1_eval`: `moon-rl eval --tasks retrieval --no-reasoning --max-products 0 --max-queries 0` on the prepared abt-buy
   catalog (206 queries x 1,092 offers).
2. `records_per_s`: `moon-rl embed --split corpus --no-reasoning` into a fresh folder, timed from outside.
3. `r1_search`: `moon-rl search --queries` (each query's embedding text, one a line) `--json -k 10`; R@1 = the top hit
   shares the query's group (the relevance eval uses), ties counted against the query as eval counts them. Same
   queries, corpus and vectors: it must equal `r1_eval`.
4. `kill_resume_ok`: the same `embed` into another folder, started and SIGKILLed three times (each start resumes the
   last; each kill once that start has written a shard of its own, a seeded random fraction of a shard's time later, so
   it lands mid-run), then run to the end; ok when the shards hold every id once and the vectors equal step 2's exactly.
5. `records_per_s_ray`, `ray_throughput_ratio`, `ray_max_abs_diff`: step 2's command on the whole catalog (2,173
   offers) without and then with --ray (a local Ray instance, one actor holding the model on both CPUs), back to
   back, timed the same way; the two indexes compared.
The vector served is the model's no-reasoning one (the cheap index; writing its reasoning for 1,298 offers takes
minutes here); the reasoning vector goes through the same code with `--reasoning`.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonfile import read_json, write_json  # noqa: E402
from machine import machine_info  # noqa: E402
from matching_data import split_ids  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "embed.json"
PY = sys.executable
SEED = 0


def moon(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [PY, "-m", "moon_rl", *args]
    print("$ moon-rl " + " ".join(args), flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=True, text=True, capture_output=capture)


def catalog(work: Path) -> Path:
    out = work / "abt-buy"
    if not (out / "products.jsonl").is_file():
        moon("data", "prepare", "--source", "matching", "--input", str(ROOT / "moon_rl" / "demo_data" / "abt-buy"), "--out", str(out))
    return out


def groups(cat: Path) -> dict[str, str]:
    return {r["id"]: r["group_id"] for r in map(json.loads, (cat / "products.jsonl").read_text(encoding="utf-8").splitlines())}


def r1_eval(model: str, cat: Path, work: Path) -> float:
    out = work / "eval"
    moon("eval", "--model", model, "--data", str(cat), "--out", str(out), "--tasks", "retrieval", "--no-reasoning", "--no-query-reasoning",
         "--max-products", "0", "--max-queries", "0", "--overwrite-output")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    (entry,) = metrics["models"].values()
    return entry["retrieval"]["query->product"]["recall@1"]


def embed(model: str, cat: Path, out: Path, split: str | None = "corpus") -> list[str]:
    return ["embed", "--model", model, "--data", str(cat), *(["--split", split] if split else []), "--out", str(out), "--no-reasoning",
            "--shard-size", "128"]


def r1_search(cat: Path, index: Path, work: Path) -> float:
    from data_prep.schema import load_catalog
    from moon_rl.eval.lexical import record_text

    products = {p.id: p for p in load_catalog(cat)}
    group = groups(cat)
    corpus_groups = {group[i] for i in split_ids(cat, "corpus")}
    queries = [q for q in split_ids(cat, "query") if group[q] in corpus_groups]  # eval scores queries with a relevant item
    qfile = work / "queries.txt"
    qfile.write_text("\n".join(record_text(products[q]) for q in queries) + "\n", encoding="utf-8")
    hits = json.loads(moon("search", "--index", str(index), "--queries", str(qfile), "--json", "-k", "10", capture=True).stdout)
    return sum(top1_pessimistic(h["hits"], group, group[q]) for q, h in zip(queries, hits)) / len(queries)


TIE_TOL = 1e-6  # moon_rl.eval.metrics' tie_tol


def top1_pessimistic(hits: list[dict], group: dict[str, str], want: str) -> bool:
    """A hit at rank 1 the way eval counts it (`moon_rl.eval.metrics`, pessimistic ties): the best relevant score beats
    every other hit's by more than TIE_TOL. abt-buy's corpus holds offers with the same text (6 texts twice), whose equal scores
    a plain top-1 would break in the query's favour."""
    relevant = [h["score"] for h in hits if group[h["id"]] == want]
    return bool(relevant) and all(h["score"] < max(relevant) - TIE_TOL for h in hits if group[h["id"]] != want)


def kill_resume(model: str, cat: Path, work: Path, reference: Path, expected_s: float) -> dict:
    import numpy as np

    from moon_rl.index.store import Index

    out = work / "index-killed"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    rng = random.Random(SEED)
    per_shard_s = expected_s / -(-1092 // 128)

    def on_disk() -> int:
        return len(list((out / "shards").glob("*.parquet"))) if (out / "shards").is_dir() else 0

    kills = []
    for _ in range(3):  # each kill interrupts a fresh start of the same command (which resumes the last)
        # mid-run for sure: once this start has written a shard of its own, a seeded random moment into the next one
        before = on_disk()
        proc = subprocess.Popen([PY, "-m", "moon_rl", *embed(model, cat, out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        while proc.poll() is None and on_disk() == before:
            time.sleep(0.1)
        time.sleep(rng.uniform(0.1, 0.9) * per_shard_s)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append({"after_s": round(time.perf_counter() - t0, 1), "was_running": alive, "shards_on_disk": on_disk()})
    moon(*embed(model, cat, out))
    a, b = Index(out), Index(reference)
    same_ids = a.ids == b.ids and len(set(a.ids)) == len(a.ids)
    diff = float(np.abs(a.vectors - b.vectors).max()) if a.vectors.shape == b.vectors.shape else float("inf")
    return {"kills": kills, "ids_once": same_ids, "max_abs_diff": diff, "ok": same_ids and diff == 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a trained moon-rl run (e.g. the demo's grpo folder)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "embed-bench")
    ap.add_argument("--redo", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    res = {} if args.redo else read_json(RESULTS)
    load_before = __import__("os").getloadavg()[0]
    res.update(model=args.model, machine=machine_info(load_before))
    cat = catalog(args.work)

    def save():
        write_json(RESULTS, res)

    if "r1_eval" not in res:
        res["r1_eval"] = r1_eval(args.model, cat, args.work)
        save()
    index = args.work / "index"
    if "records_per_s" not in res:
        if index.exists():
            import shutil

            shutil.rmtree(index)
        t0 = time.perf_counter()
        moon(*embed(args.model, cat, index))
        seconds = time.perf_counter() - t0
        n = json.loads((index / "moon_rl_index.json").read_text(encoding="utf-8"))["count"]
        res.update(records_per_s=round(n / seconds, 2), embed_seconds=round(seconds, 1), embed_records=n,
                   embed_command="moon-rl " + " ".join(embed(args.model, cat, index)))
        save()
    if "r1_search" not in res:
        res["r1_search"] = r1_search(cat, index, args.work)
        res["r1_match"] = abs(res["r1_search"] - res["r1_eval"]) < 1e-6  # eval's metrics are float32
        save()
    if "kill_resume_ok" not in res:
        detail = kill_resume(args.model, cat, args.work, index, res["embed_seconds"])
        res.update(kill_resume_ok=detail["ok"], kill_resume=detail)
        save()
    if "records_per_s_ray" not in res:
        res.update(ray_step(args.model, cat, args.work, index))
        save()
    print(json.dumps({k: v for k, v in res.items() if k != "machine"}, indent=1))


def ray_step(model: str, cat: Path, work: Path, reference: Path) -> dict:
    """Step 2's command on the whole catalog (both shops, 2,173 offers: Ray's ~half-minute start-up is a fixed cost,
    and a catalog worth a cluster is far larger) without and with --ray (a local Ray instance, one actor on this
    machine's CPUs), back to back, each into a fresh folder and timed from outside; the two indexes compared."""
    import shutil

    import numpy as np

    from moon_rl.index.store import Index

    del reference  # the Ray index is compared with the single-process one of the same plan (whole catalog)
    seconds = {}
    for name, extra in (("single", []), ("ray", ["--ray"])):
        out = work / f"index-{name}-side-by-side"
        if out.exists():
            shutil.rmtree(out)
        t0 = time.perf_counter()
        moon(*embed(model, cat, out, split=None), *extra)
        seconds[name] = time.perf_counter() - t0
    a, b = Index(work / "index-ray-side-by-side"), Index(work / "index-single-side-by-side")
    n = len(a.ids)
    return {"records_per_s_single_side_by_side": round(n / seconds["single"], 2), "records_per_s_ray": round(n / seconds["ray"], 2),
            "ray_throughput_ratio": round(seconds["single"] / seconds["ray"], 3), "ray_ids_same": a.ids == b.ids,
            "ray_max_abs_diff": float(np.abs(a.vectors - b.vectors).max()),
            "ray_records": n, "ray_command": "moon-rl " + " ".join([*embed(model, cat, work / "index-ray-side-by-side", split=None), "--ray"])}


if __name__ == "__main__":
    main()
