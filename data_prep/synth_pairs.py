"""`moon-rl data synth --pairs N`: a synthetic A-vs-B pairs set (which of two rendered images matches the title).

    moon-rl data synth --pairs 400 --out data/pairs     # pairs/train.jsonl, pairs/test.jsonl, images/

Each pair shows two renders (`data_prep.synth_render`) that differ only in colour (`differ="colour"`: one kind
and pattern) or only in kind (`differ="kind"`: one colour and pattern); the context is a title naming what the
better candidate shows. Colours come from a few
well-separated ones, so a small model can learn the task in minutes; the winner's side is drawn 50/50, so
answering always A (or B) scores chance. The rationale says which colour each candidate shows (SFT target).
Split 80/20 by pair; deterministic for a seed. The files follow data_prep/pairwise.py.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

from data_prep.synth_render import View, render

KINDS = {"tshirt": "T-shirt", "mug": "mug", "tote": "tote bag", "plate": "plate"}
PAIR_COLOURS = ("red", "blue", "green", "yellow")
TEST_FRACTION = 0.2
PAIRS_FILES = ("train.jsonl", "test.jsonl", "images")  # everything synth_pairs writes


@dataclasses.dataclass
class PairsConfig:
    pairs: int = 400
    seed: int = 0
    image_size: int = 32
    colours: tuple[str, ...] = PAIR_COLOURS  # at least two; fewer make the task easier for a small model
    differ: str = "colour"  # what tells the two renders apart and the title names: "colour" or "kind"


def synth_pairs(out: str | Path, cfg: PairsConfig) -> dict:
    """Write `out/{train,test}.jsonl` and `out/images/`; returns a summary."""
    out = Path(out)
    if len(cfg.colours) < 2:
        raise ValueError(f"colours: need at least two, got {list(cfg.colours)}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    lines: list[dict] = []
    if cfg.differ not in ("colour", "kind"):
        raise ValueError(f"differ: 'colour' or 'kind', got {cfg.differ!r}")
    for k in range(cfg.pairs):
        pattern = rng.choice(["plain", "striped"])
        better = rng.choice("ab")
        if cfg.differ == "colour":
            kind = rng.choice(list(KINDS))
            target, other = rng.sample(list(cfg.colours), 2)
            looks = {"a": (kind, target if better == "a" else other), "b": (kind, other if better == "a" else target)}
            wanted = f"{target} {KINDS[kind]}"
            seen = {side: colour for side, (_, colour) in looks.items()}
        else:
            colour = rng.choice(list(cfg.colours))
            target, other = rng.sample(list(KINDS), 2)
            looks = {"a": (target if better == "a" else other, colour), "b": (other if better == "a" else target, colour)}
            wanted = KINDS[target]
            seen = {side: KINDS[kind] for side, (kind, _) in looks.items()}
        cands = {}
        for side, (kind, colour) in looks.items():
            name = f"images/{k:05d}{side}.png"
            render(kind, {"colour": colour, "pattern": pattern}, cfg.image_size, View.sample(rng)).save(out / name)
            cands[side] = {"image": name}
        lines.append({
            "id": f"pair-{k:05d}",
            "a": cands["a"],
            "b": cands["b"],
            "better": better,
            "context": f"A {wanted}",
            "rationale": f"The title asks for a {wanted}. Candidate A is {seen['a']}, candidate B is {seen['b']}, "
            f"so {better.upper()} matches.",
        })
    n_test = max(1, round(cfg.pairs * TEST_FRACTION)) if cfg.pairs > 1 else 0
    splits = {"train": lines[: len(lines) - n_test], "test": lines[len(lines) - n_test :]}
    for name, rows in splits.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"out": str(out), "pairs": {k: len(v) for k, v in splits.items()}, "images": 2 * cfg.pairs,
            "better_a": sum(r["better"] == "a" for r in lines)}
