"""`moon_rl.load(...).encode` embeddings/s on SmolLM2-135M-Instruct against the same computation written by hand
with plain transformers calls, batch by batch in turns in ONE process.

    OMP_NUM_THREADS=1 nohup nice -n 5 .venv/bin/python benchmarks/encode_135m.py > runs/encode_135m.log 2>&1 &
    .venv/bin/python benchmarks/encode_135m.py --phases reasoning --force      # redo one phase

The model: `runs/models/smollm2-135m-instruct` with random LoRA (r16) and a random 256-d head
(`moon_rl.eval.random_run.write_random_run`, built once into `--work`); records: abt-buy products. Both sides use
the same loaded model object (`moon.model`, its tokenizer, its head's projection) on the same records, so the
ratio is the cost of moon-rl's encode path itself. Pairs (embeddings/s ratio = raw time / encode time):
- no_reasoning: `encode(reasoning=False)` vs raw: chat-templated prompt -> tokenizer (right padding) -> backbone
  forward -> mean over attended tokens -> head projection -> L2 normalisation.
- reasoning: `encode(reasoning=True, max_new_tokens=N)` vs raw: the same prompt -> `model.generate` (greedy, N new
  tokens, left padding) -> one backbone forward over prompt + completion (positions from the attention mask) ->
  mean over the completion up to its first end-of-sequence token -> head -> normalisation.
- input (extra row, a head with pooling 'input', what the 135M recipes train): `encode` vs raw: the record's
  plain text (`data_prep.formats.embedding_text`) -> tokenizer -> backbone -> mean -> head -> normalisation.
Every raw embedding is compared with encode's (min cosine in the results): the two sides compute the same thing.
A turn is one batch; the figure is the median over batches of the paired CPU-time ratio, the wall-time ratio
beside it (see benchmarks/speed_135m.py on why CPU time on this shared machine).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from interleave import code_version, paired_ratio, read_results, take_turns, threads_and_command, time_summary, update_results
from machine import machine_info
from ratios import PATH as RATIOS
from ratios import record
from speed_135m import MODEL, ROOT  # importing it also sets the offline env and puts the repo on sys.path

RESULTS = ROOT / "benchmarks" / "results" / "encode_135m.json"
FIGURES = {  # phase: (figure, target, direction, note)
    "no_reasoning": ("`encode` embeddings/s without reasoning / a raw batched forward + pooling of the same model", 0.90, ">=", None),
    "reasoning": ("`encode` with reasoning / plain `model.generate` with the same settings + one forward", 0.90, ">=", None),
    "input": ("`encode` embeddings/s, pooling input / a raw batched forward of the same texts + pooling", 0.90, ">=",
              "extra row: pooling 'input' (what the 135M recipes use), not one of the issue's five targets"),
}


# ---- model and records --------------------------------------------------------------------------------


def random_run(work: Path, pooling: str) -> Path:
    from moon_rl.eval.random_run import write_random_run

    out = work / f"run-{pooling}"
    if not (out / "adapter_config.json").is_file():
        write_random_run(MODEL, out, pooling=pooling, embedding_dim=256, lora_r=16)
    return out


def records(catalog: Path, n: int) -> list:
    from data_prep.schema import load_catalog

    return load_catalog(catalog)[:n]


# ---- the raw side: plain transformers calls -------------------------------------------------------------


def backbone(moon):
    return moon.model.get_base_model().model  # PeftModel -> LlamaForCausalLM -> LlamaModel (LoRA layers inside)


def project(moon, hidden, mask):
    """Mean over `mask` (B, L) of hidden (B, L, H), then the head's projection and L2 normalisation -> (B, D)."""
    import torch.nn.functional as F

    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, H)
    return F.normalize(moon.extras.head.proj(pooled.float()), dim=-1)


def chat_texts(moon, batch) -> list[str]:
    from moon_rl.inference import record_prompt

    prompts = [record_prompt(r, Path("."), False)[0] for r in batch]
    return [moon.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in prompts]


def raw_no_reasoning(moon, batch):
    import torch

    tok = moon.tokenizer
    tok.padding_side = "right"
    inputs = tok(chat_texts(moon, batch), padding=True, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        hidden = backbone(moon)(**inputs, use_cache=False).last_hidden_state  # (B, L, H)
        return project(moon, hidden, inputs["attention_mask"])


def raw_reasoning(moon, batch, max_new_tokens: int):
    import torch

    tok = moon.tokenizer
    tok.padding_side = "left"
    inputs = tok(chat_texts(moon, batch), padding=True, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = moon.model.generate(**inputs, do_sample=False, temperature=None, top_p=None, top_k=None,
                                  max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)  # (B, P + T)
        completion = out[:, inputs["input_ids"].size(1) :]  # (B, T)
        eos = moon.model.generation_config.eos_token_id
        eos = {*(eos if isinstance(eos, list) else [eos]), tok.eos_token_id} - {None}
        is_eos = torch.isin(completion, torch.tensor(sorted(eos)))
        keep = (is_eos.cumsum(dim=1) - is_eos.long()) == 0  # up to and including the first end-of-sequence token
        attention = torch.cat([inputs["attention_mask"], keep.long()], dim=1)  # (B, P + T)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # left padding: positions start at each row's first token
        hidden = backbone(moon)(input_ids=out, attention_mask=attention, position_ids=positions, use_cache=False).last_hidden_state
        reasoning = torch.cat([torch.zeros_like(inputs["attention_mask"]), keep.long()], dim=1)
        return project(moon, hidden, reasoning)


def raw_input(moon, batch):
    import torch

    from data_prep.formats import embedding_text

    tok = moon.tokenizer
    tok.padding_side = "right"
    inputs = tok([embedding_text(r.title, r.attributes) for r in batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = backbone(moon)(**inputs, use_cache=False).last_hidden_state
        return project(moon, hidden, inputs["attention_mask"])


# ---- phases -------------------------------------------------------------------------------------------


def phase(name: str, moon, recs: list, args) -> dict:
    import torch

    size = args.batch_size
    batches = [recs[i : i + size] for i in range(0, len(recs) - size + 1, size)]
    encode_kw = dict(batch_size=size, reasoning=name == "reasoning", max_new_tokens=args.max_new_tokens, progress=False)
    raw = {"no_reasoning": raw_no_reasoning, "reasoning": lambda m, b: raw_reasoning(m, b, args.max_new_tokens), "input": raw_input}[name]
    cosines: list[float] = []
    out: dict[str, torch.Tensor] = {}

    def turn(side: str):
        def run(step: int) -> None:
            batch = batches[step]
            out[side] = moon.encode(batch, **encode_kw) if side == "encode" else raw(moon, batch)
            if len(out) == 2:  # both sides have done this batch: do they agree?
                cosines.append(float((out.pop("encode") * out.pop("raw")).sum(dim=-1).min()))

        return run

    times = take_turns({"encode": turn("encode"), "raw": turn("raw")}, len(batches) - args.warmup, args.warmup, label=f"{name} ")
    ratios = {m: round(1 / paired_ratio(times[m], "encode", "raw"), 4) for m in times}  # embeddings/s ratio
    return {
        "ratios": ratios,
        "embeddings_per_second": {m: {s: round(size * len(t) / sum(t), 2) for s, t in times[m].items()} for m in times},
        "cpu_seconds_per_batch": time_summary(times["cpu"]), "wall_seconds_per_batch": time_summary(times["wall"]),
        "min_cosine_encode_vs_raw": round(min(cosines), 6),
        "settings": {"batch_size": size, "timed_batches": len(batches) - args.warmup, "warmup_batches": args.warmup,
                     "max_new_tokens": args.max_new_tokens if name == "reasoning" else 0, "lora_r": 16, "embedding_dim": 256,
                     "records": "abt-buy products (catalog order)"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", nargs="+", choices=list(FIGURES), default=list(FIGURES))
    parser.add_argument("--force", action="store_true", help="re-measure phases already in the results file")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=16, help="timed batches per phase (no reasoning, input)")
    parser.add_argument("--reasoning-batches", type=int, default=8, help="timed batches with reasoning")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "speed_135m", help="the random runs and the catalog (speed_135m.py builds it)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--ratios", type=Path, default=RATIOS, help="where the ratio rows go (ratios.record)")
    args = parser.parse_args()

    import moon_rl

    command = threads_and_command("encode_135m.py")
    done = read_results(args.out)
    for name in args.phases:
        if name in done and not args.force:
            continue
        moon = moon_rl.load(random_run(args.work, "input" if name == "input" else "mean"))
        n = args.batches if name != "reasoning" else args.reasoning_batches
        recs = records(args.work / "abt-buy", args.batch_size * (n + args.warmup))
        load = os.getloadavg()[0]
        result = {"command": command, "code": code_version(ROOT), **phase(name, moon, recs, args), "machine": machine_info(load)}
        update_results(args.out, name, result)
        figure, target, direction, note = FIGURES[name]
        record(figure, result["ratios"]["cpu"], target, direction, command, measure="median paired ratio of per-batch CPU time",
               ratio_wall=result["ratios"]["wall"], model="SmolLM2-135M-Instruct + random LoRA r16 + 256-d head",
               results="benchmarks/results/encode_135m.json", settings=result["settings"], path=args.ratios, **({"note": note} if note else {}))
        print(f"{name}: {result['ratios']} min cosine {result['min_cosine_encode_vs_raw']}", flush=True)
        del moon


if __name__ == "__main__":
    main()
