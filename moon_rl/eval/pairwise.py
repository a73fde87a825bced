"""`moon-rl eval --tasks pairwise --data PAIRS.jsonl`: A-vs-B accuracy on held-out pairs (the Creative4U task).

    moon-rl eval --model runs/pw-grpo --baseline runs/pw-sft --data pairs/test.jsonl --tasks pairwise --out runs/pw-eval

Each model answers every pair of the pairs file (`data_prep.pairwise`, the same prompt the training rows carry)
greedily; `metrics.pairwise_accuracy` scores the answers with the `pairwise_choice` reward's parser. Baselines
in the same report, on the same pairs: always answering A and always answering B (chance on a balanced set).
Pairwise evaluation reads a pairs file, not a catalog, so it runs apart from the catalog tasks.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError
from moon_rl.eval import metrics as M


def generate_answers(model, pairs, pairs_file: Path, *, max_new_tokens: int | None, batch_size: int, progress: bool) -> list[str]:
    """Greedy completions of `model` (a `moon_rl.inference.MoonModel`) for each pair's prompt.

    Uses the model's own generation internals (`_generate_ids`, `_decode`): the pair prompt is not a product or
    a query, which is all `MoonModel.generate` builds prompts for."""
    from PIL import Image
    from tqdm.auto import tqdm

    from data_prep.pairwise import pair_prompt

    texts: list[str] = []
    vl = model.is_vision_language
    for start in tqdm(range(0, len(pairs), batch_size), desc="answer pairs", unit="batch", disable=not progress):
        batch = pairs[start : start + batch_size]
        prompts = [pair_prompt(p, pairs_file, with_images=vl) for p in batch]
        chats = [model.processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in prompts]
        model.tokenizer.padding_side = "left"  # every row continues from its last prompt token
        if vl:
            images = []
            for _, paths in prompts:
                for path in paths:
                    with Image.open(path) as img:
                        images.append(img.convert("RGB"))
            inputs = model.processor(text=chats, images=images or None, padding=True, return_tensors="pt")
        else:
            inputs = model.tokenizer(chats, padding=True, return_tensors="pt", add_special_tokens=False)
        inputs = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        texts += model._decode(model._generate_ids(inputs, max_new_tokens))
    return texts


def constant_baselines(winners: list[str]) -> dict[str, Any]:
    """Always-A and always-B, scored like a model."""
    return {f"always {x}": {"pairwise": M.pairwise_accuracy([f"<answer>{x}</answer>"] * len(winners), winners)} for x in "AB"}


def run_pairwise_eval(cfg, paths: list[str], names: list[str]) -> dict[str, Any]:
    """Evaluate each model on the pairs file `cfg.data`; write metrics.json and report.md into `cfg.out`."""
    from data_prep.pairwise import read_pairs
    from moon_rl.eval.report import write_report
    from moon_rl.inference import load, resolve_model_dir

    if cfg.tasks != ["pairwise"]:
        raise MoonError("--tasks pairwise reads a pairs file as --data; run the catalog tasks in an eval of their own")
    pairs_file = Path(cfg.data)
    if not pairs_file.is_file():
        raise MoonError(f"--data {pairs_file}: --tasks pairwise takes a pairs JSONL file (`moon-rl data synth --pairs N`)")
    pairs, _ = read_pairs(pairs_file)
    winners = [p.better for p in pairs]
    metrics: dict[str, Any] = {
        "data": str(pairs_file),
        "n_pairs": len(pairs),
        "notes": [],
        "config": dataclasses.asdict(cfg),
        "baselines": constant_baselines(winners),
        "models": {},
    }
    for name, path in zip(names, paths):
        print(f"== evaluating {name} ({path})", flush=True)
        start = time.perf_counter()
        model = load(path, device=cfg.device, base_model=cfg.base_model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
        try:
            answers = generate_answers(
                model, pairs, pairs_file, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, progress=cfg.progress
            )
            result = M.pairwise_accuracy(answers, winners)
            result["examples"] = [{"id": p.id, "winner": p.better, "completion": a[:300]} for p, a in list(zip(pairs, answers))[:3]]
            metrics["models"][name] = {"path": str(path), "source": model.source, "kind": model.kind, "pairwise": result}
        finally:
            del model
            gc.collect()
        metrics["models"][name]["seconds"] = round(time.perf_counter() - start, 2)
    files = write_report(metrics, cfg.out, {n: resolve_model_dir(p) for n, p in zip(names, paths)})
    metrics["files"] = {k: str(v) for k, v in files.items()}
    return metrics
