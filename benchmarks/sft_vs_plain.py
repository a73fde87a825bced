"""`moon-rl sft` (pooling "input", next-token term off) against a plain transformers + PEFT contrastive loop, side by
side on the same base, rows, batches and seeds: R@1 on the full abt-buy corpus at equal steps, and step time.

    OMP_NUM_THREADS=2 nohup .venv/bin/python benchmarks/sft_vs_plain.py --points 30,60,120 > runs/sft_vs_plain.log 2>&1 &   # resumes
    .venv/bin/python benchmarks/sft_vs_plain.py --contenders plain,moon,moon_proj256 --points 60 --seeds 0 --results /tmp/x.json

Needs `runs/models/smollm2-135m-instruct` (`moon-rl models get smollm2-135m-instruct --out ...`) and the abt-buy
folder of ../shared/data/real. Results: benchmarks/results/sft_vs_plain.json, written at every scoring point.

Contenders, each one optimizer step per turn on the same rows (`interleave.take_turns` alternates their order):
- `plain`: no moon-rl code. transformers' AutoModelForCausalLM + peft LoRA (r=32, alpha=64, dropout 0, every linear
  layer of the language model), mean pooling over the offer text's last hidden states, L2-normalised, no projection;
  in-batch InfoNCE at temperature 0.05 over the batch's rows (an anchor's positives: the other rows of its product
  group; itself excluded); AdamW lr 2e-4, 5 warm-up steps then constant, gradient norm clipped at 1.0 (as HF's
  Trainer does). Its text of a row is `data_prep.formats.embedding_text` (what moon-rl embeds: the same strings).
- `moon`: `MoonSFTTrainer` built from configs/sft_smollm2_matching.yaml the way `moon-rl sft` builds it
  (`build_sft_configs` + `load_and_wrap`); a turn is its own collator on the rows + `Trainer.training_step` +
  gradient clipping at max_grad_norm 1.0 + optimizer and scheduler step (`interleave.one_step`, as Trainer's loop). Scored through `moon_rl.MoonModel.encode` (serving path).
- ablations, one setting changed each from `moon` (`--contenders`): `moon_proj256` (a random 576 -> 256 projection,
  the previous default), `moon_r16` (LoRA rank 16 / alpha 32, the previous recipe), `moon_ntp` (the next-token term
  on: TRL's loss over prompt + trace, weight 1, what the term costs and buys).
Batches: the `moon` trainer's own sampler plans the epoch (whole product groups per batch, the run's seed; 16 rows a
step); every contender gets exactly those batches, in that order. Before each turn the torch seed is reset to the same
value. Seeds (--seeds, default 0,1,2): one full run each, the seed setting the LoRA initialisation and the batch plan
of both sides. A seed reruns to the same R@1; seeds differ from each other by up to 0.07 at 120 steps, and the two
sides of one seed by up to 0.015 (206 queries: one query is 0.005), so the rows give the mean over seeds with each
seed's value beside it. (A first version drove `moon` without Trainer's gradient clipping: it led by 0.01-0.03 at 60
steps and trailed by 0.03-0.04 at 120; `interleave.one_step` now clips as Trainer's loop does.)
Scoring (at each of --points): queries = the 206 table-A offers of positive test pairs, corpus = all 1,092 table-B
offers (the split `moon-rl data prepare --source matching` writes; the same as benchmarks/pretrained.py), R@1 / R@10 /
MRR with pessimistic ties. Step time: the paired median ratio moon / plain of per-step CPU and wall time, over every
seed's steps.
Resume: at each scoring point every contender's trainable tensors and optimizer tensors (safetensors) and the
optimizer / scheduler settings (JSON) are saved under --workdir/seed<N>/state; a rerun skips finished seeds and
starts a seed from its last completed point.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from interleave import code_version, one_step, paired_ratio, ready_for_steps, take_turns, threads_and_command, time_summary
from jsonfile import read_json, write_json
from speed_135m import ABT_BUY, MODEL, ROOT  # importing it also sets the offline env and puts the repo on sys.path

RESULTS = ROOT / "benchmarks" / "results" / "sft_vs_plain.json"
RECIPE = ROOT / "configs" / "sft_smollm2_matching.yaml"
LR, WARMUP, TEMPERATURE, BATCH, MAX_LEN = 2e-4, 5, 0.05, 16, 128
ABLATIONS = {"moon": {}, "moon_proj256": {"embedding_dim": 256}, "moon_r16": {"lora_r": 16, "lora_alpha": 32}, "moon_ntp": {"next_token_weight": 1.0}}


# ---- data -----------------------------------------------------------------------------------------------


def prepared(work: Path):
    """(sft dataset folder, scoring texts): abt-buy through moon-rl's own `data prepare`, as benchmarks/pretrained.py."""
    from matching_data import Matching, prepare_catalog, run
    from model_rows import sft_catalog

    catalog = prepare_catalog(ABT_BUY, work)
    ds = work / "sft_data"
    if not (ds / "dataset_info.json").is_file():
        run([sys.executable, "-m", "moon_rl", "data", "prepare", "--task", "sft", "--catalog", str(sft_catalog(catalog, work / "sft_catalog")),
             "--out", str(ds), "--empty-targets"])
    return ds, Matching(catalog)


def row_text(row: dict) -> str:
    from data_prep.formats import embedding_text

    return embedding_text(row.get("title") or "", row.get("attributes"))


# ---- the plain loop (transformers + PEFT only) -----------------------------------------------------------


class PlainLoop:
    """A contrastive LoRA fine-tune as an engineer writes it without moon-rl."""

    def __init__(self, max_steps: int, seed: int):
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer, get_constant_schedule_with_warmup

        torch.manual_seed(seed)  # the LoRA initialisation
        self.tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
        self.tokenizer.padding_side = "right"
        base = AutoModelForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32)
        lora = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        self.model = get_peft_model(base, lora)
        self.body = self.model.get_base_model().model  # the transformer without its LM head
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=LR, weight_decay=0.0)
        self.scheduler = get_constant_schedule_with_warmup(self.optimizer, WARMUP)
        self.model.train()

    def embed(self, texts: list[str]):
        import torch.nn.functional as F

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        hidden = self.body(**batch, use_cache=False).last_hidden_state  # (B, L, H)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)  # (B, H)

    def step(self, texts: list[str], groups: list[str]) -> float:
        import torch

        emb = self.embed(texts)
        n = emb.size(0)
        self_mask = torch.eye(n, dtype=torch.bool)
        ids = torch.tensor([hash(g) for g in groups])
        positive = (ids[:, None] == ids[None, :]) & ~self_mask  # (B, B)
        logits = (emb @ emb.T / TEMPERATURE).masked_fill(self_mask, float("-inf"))
        log_prob = logits.log_softmax(dim=-1)
        anchors = positive.any(dim=1)
        per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp(min=1)
        loss = per_anchor[anchors].mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        return loss.item()

    def encode(self, texts: list[str], batch: int = 64):
        import torch

        self.model.eval()
        with torch.no_grad():
            out = torch.cat([self.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)])
        self.model.train()
        return out

    def trainable(self):
        return self.model, self.optimizer, self.scheduler


# ---- moon-rl sft ---------------------------------------------------------------------------------------


class MoonSFT:
    """`moon-rl sft` with the recipe, driven one step at a time on the benchmark's batches."""

    def __init__(self, data_dir: Path, out: Path, max_steps: int, seed: int, change: dict):
        from datasets import load_from_disk

        from moon_rl.trainers.common import load_and_wrap
        from moon_rl.trainers.sft.config import build_sft_configs
        from moon_rl.trainers.sft.trainer import MoonSFTTrainer

        overrides = {"model": str(MODEL), "output_dir": str(out), "max_steps": max_steps, "report_to": "none", "save_strategy": "no",
                     "logging_steps": 10**6, "disable_tqdm": True, "seed": seed, **change}
        config, model_args = build_sft_configs(RECIPE, overrides)
        self.trainer = load_and_wrap(MoonSFTTrainer, config, model_args, load_from_disk(str(data_dir)))
        ready_for_steps(self.trainer, max_steps)
        self.view = self.trainer._remove_unused_columns(self.trainer.train_dataset, description="training")
        self.settings = {k: getattr(config, k) for k in ("next_token_weight", "pooling", "embedding_dim", "contrastive_temperature",
                                                          "learning_rate", "activation_checkpointing", "max_length")}
        self.settings.update(lora_r=model_args.lora_r, lora_alpha=model_args.lora_alpha)

    def order(self) -> list[int]:
        return list(self.trainer._get_train_sampler(self.trainer.train_dataset))

    def step(self, indices: list[int]) -> None:
        batch = self.trainer.data_collator([self.view[i] for i in indices])
        one_step(self.trainer, batch, self.trainer._get_num_items_in_batch([batch], self.trainer.args.device))

    def encode(self, texts: list[str]):
        from moon_rl.inference import MoonModel, Query

        served = MoonModel(self.trainer.model, self.trainer.processing_class, self.trainer.moon_extras(), source="in-memory", kind="moon-rl sft")
        out = served.encode([Query(text=t) for t in texts], reasoning=False, batch_size=64, progress=False)
        self.trainer.model.train()
        return out

    def trainable(self):
        return self.trainer.model, self.trainer.optimizer, self.trainer.lr_scheduler


# ---- save / resume at scoring points ---------------------------------------------------------------------


def save_state(contender, folder: Path) -> None:
    """Trainable tensors and the optimizer's tensors as safetensors; the rest of optimizer + scheduler state as JSON."""
    from safetensors.torch import save_file

    model, optimizer, scheduler = contender.trainable()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}, str(folder / "trainable.safetensors"))
    opt = optimizer.state_dict()
    save_file({f"{i}.{k}": v.contiguous() for i, st in opt["state"].items() for k, v in st.items()}, str(folder / "optimizer.safetensors"))
    (folder / "optim.json").write_text(json.dumps({"param_groups": opt["param_groups"], "scheduler": scheduler.state_dict()}))


def load_state(contender, folder: Path) -> None:
    from safetensors.torch import load_file

    model, optimizer, scheduler = contender.trainable()
    trained = load_file(str(folder / "trainable.safetensors"))
    missing = set(trained) - {n for n, _ in model.named_parameters()}
    if missing:
        raise RuntimeError(f"{folder}: saved tensors the model does not have: {sorted(missing)[:3]}")
    model.load_state_dict(trained, strict=False)
    rest = json.loads((folder / "optim.json").read_text())
    state: dict[int, dict] = {}
    for key, value in load_file(str(folder / "optimizer.safetensors")).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
    scheduler.load_state_dict(rest["scheduler"])


# ---- scoring --------------------------------------------------------------------------------------------


def score(contender, data) -> dict:
    from matching_data import rank_metrics

    t0 = time.time()
    queries, corpus = contender.encode(data.query_texts), contender.encode(data.corpus_texts)
    result = rank_metrics((queries @ corpus.T).numpy(), data.query_groups, data.corpus_groups)
    return {**{k: round(v, 4) for k, v in result.items() if k != "n"}, "n": result["n"], "encode_s": round(time.time() - t0, 1)}


# ---- driver ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contenders", default="plain,moon", help=f"comma-separated: plain, {', '.join(ABLATIONS)}")
    parser.add_argument("--points", default="60,120", help="steps at which every contender is scored")
    parser.add_argument("--seeds", default="0,1,2", help="one full run per seed (LoRA initialisation, batch plan); rows report the mean")
    parser.add_argument("--ablations-until", type=int, default=60, help="ablation contenders train and are scored up to this step only")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "sft_vs_plain")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    command = threads_and_command("sft_vs_plain.py")
    import torch

    from machine import machine_info

    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    points = sorted(int(p) for p in args.points.split(","))
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    unknown = [n for n in names if n != "plain" and n not in ABLATIONS]
    if unknown or "plain" not in names or "moon" not in names:
        raise SystemExit(f"contenders must include plain and moon; unknown: {unknown}")
    data_dir, data = prepared(args.workdir / "abt-buy")
    results = read_json(args.results)
    tag = ",".join(names)  # one record per set of contenders; its seeds accumulate under "seeds"
    record = results.setdefault("runs", {}).setdefault(tag, {"seeds": {}})
    for seed in seeds:
        run = record["seeds"].setdefault(str(seed), {"points": {}, "times": {"wall": {n: [] for n in names}, "cpu": {n: [] for n in names}}})
        if all(str(p) in run["points"] for p in points):
            print(f"seed {seed}: done", flush=True)
            continue

        def save() -> None:  # after every scoring point: a stopped session loses at most the steps since the last one
            summarise(results, record, names, command, machine_info(os.getloadavg()[0]))
            write_json(args.results, results)

        run_seed(seed, names, points, args, data_dir, data, run, save)


def run_seed(seed: int, names: list[str], points: list[int], args, data_dir: Path, data, run: dict, save) -> None:
    """Every contender from step 0 (or the last saved point of this seed) to the last point, scored at each point."""
    import torch

    work = args.workdir / f"seed{seed}"
    contenders = {}
    for name in names:
        contenders[name] = PlainLoop(points[-1], seed) if name == "plain" else MoonSFT(data_dir, work / name, points[-1], seed, ABLATIONS[name])
    moon = contenders["moon"]
    order = moon.order()  # the epoch plan of moon-rl's sampler; cycled if the points ask for more than an epoch
    batches = [order[i : i + BATCH] for i in range(0, len(order) - BATCH + 1, BATCH)]
    rows = moon.trainer.train_dataset
    texts = [row_text(r) for r in rows]
    groups = list(rows["group_id"])
    print(f"seed {seed}: {len(rows)} training rows, {len(batches)} batches of {BATCH} per epoch; contenders {names}", flush=True)

    done = [int(p) for p in run["points"]]
    start = max([p for p in done if (work / "state" / str(p)).is_dir()], default=0)
    if start:
        for name, c in list(contenders.items()):
            if (work / "state" / str(start) / name).is_dir():
                load_state(c, work / "state" / str(start) / name)
            else:  # an ablation that ended before this point
                del contenders[name]
        print(f"seed {seed}: resumed at step {start} from {work / 'state' / str(start)}", flush=True)
    else:
        run["points"], run["times"] = {}, {"wall": {n: [] for n in names}, "cpu": {n: [] for n in names}}
    run["settings"] = {"base": "SmolLM2-135M-Instruct (moon-rl models get)", "rows_per_step": BATCH, "train_rows": len(rows), "seed": seed,
                       "moon": moon.settings, "plain": {"lora_r": 32, "lora_alpha": 64, "targets": "all-linear", "pooling": "mean over the offer text",
                       "projection": None, "temperature": TEMPERATURE, "lr": LR, "warmup_steps": WARMUP, "clip": 1.0},
                       "ablations": {n: ABLATIONS[n] for n in names if n in ABLATIONS}, "threads": torch.get_num_threads(),
                       "queries": len(data.query_ids), "corpus": len(data.corpus_ids)}

    def turn(name: str, offset: int):
        def go(step: int) -> None:
            indices = batches[(offset + step) % len(batches)]
            torch.manual_seed(seed * 100_003 + offset + step)
            if name == "plain":
                contenders[name].step([texts[i] for i in indices], [groups[i] for i in indices])
            else:
                contenders[name].step(indices)
        return go

    prev = start
    for point in points:
        if point <= start:
            continue
        active = [n for n in names if n in ("plain", "moon") or point <= args.ablations_until]
        t0 = time.time()
        times = take_turns({n: turn(n, prev) for n in active}, point - prev, 0, label=f"seed {seed} steps {prev + 1}-{point} ")
        for kind in ("wall", "cpu"):
            for n in active:
                run["times"][kind].setdefault(n, [])
                run["times"][kind][n] += [round(t, 4) for t in times[kind][n]]
        scores = {n: score(contenders[n], data) for n in active}
        run["points"][str(point)] = {**scores, "train_wall_s": round(time.time() - t0, 1)}
        for n in active:
            save_state(contenders[n], work / "state" / str(point) / n)
        save()
        print(f"seed {seed} step {point}: " + ", ".join(f"{n} R@1 {s['R@1']:.3f}" for n, s in scores.items()), flush=True)
        prev = point
        for n in names:
            if n not in ("plain", "moon") and point >= args.ablations_until and n in contenders:
                del contenders[n]  # done: free its memory for the rest of the run


def summarise(results: dict, record: dict, names: list[str], command: str, machine: dict) -> None:
    """Per seed: step-time ratios. Top level, in the issue's shape (`rows`, `step_time_ratio`): the mean R@1 over the
    seeds that reached each point (each seed's values beside it) and the paired step-time ratio over every seed's steps."""
    pooled: dict[str, dict[str, list[float]]] = {"wall": {}, "cpu": {}}
    for run in record["seeds"].values():
        times = run["times"]

        def ratio_of(kind: str, n: str) -> float:
            k = len(times[kind][n])  # an ablation ran the first k steps only: pair it with plain's first k
            return round(paired_ratio({n: times[kind][n], "plain": times[kind]["plain"][:k]}, n, "plain"), 4)

        run["step_time_ratio"] = {kind: {n: ratio_of(kind, n) for n in names if n != "plain" and times[kind].get(n)} for kind in times}
        run["step_seconds"] = {kind: time_summary(times[kind])["median"] for kind in times}
        for kind in pooled:
            k = min(len(times[kind]["plain"]), len(times[kind]["moon"]))
            for n in ("plain", "moon"):
                pooled[kind].setdefault(n, []).extend(times[kind][n][:k])
    record["command"], record["machine"], record["code"] = command, machine, code_version(ROOT)
    points = sorted({int(p) for run in record["seeds"].values() for p in run["points"]})
    rows = []
    for point in points:
        runs = {seed: run["points"][str(point)] for seed, run in record["seeds"].items() if str(point) in run["points"]}
        plain = {seed: r["plain"]["R@1"] for seed, r in runs.items()}
        moon = {seed: r["moon"]["R@1"] for seed, r in runs.items()}
        mean = lambda v: round(sum(v.values()) / len(v), 4)  # noqa: E731
        rows.append({"steps": point, "plain_r1": mean(plain), "moon_r1": mean(moon), "gap": round(mean(moon) - mean(plain), 4),
                     "seeds": len(runs), "plain_r1_per_seed": plain, "moon_r1_per_seed": moon})
    results["rows"] = rows
    if pooled["cpu"].get("plain"):
        results["step_time_ratio"] = round(paired_ratio(pooled["cpu"], "moon", "plain"), 4)
        results["step_time_ratio_wall"] = round(paired_ratio(pooled["wall"], "moon", "plain"), 4)
    results["command"] = command


if __name__ == "__main__":
    main()
