"""`moon-rl embed`: every record of a catalog (or every line of a text file) into vectors on disk, resumable.

    moon-rl embed --model runs/abt-buy-grpo --data data/abt-buy --split corpus --out index/abt-buy
    moon-rl embed --model runs/abt-buy-grpo --data titles.txt --out index/titles --no-reasoning

The plan: the records' order is fixed up front, longest text first (`moon_rl.records.longest_first`, as `encode`
batches), and cut into shards of `shard_size`; shard i always holds the same records, encoded in the same batches.
Each finished shard is written whole (`moon_rl.index.store`), so after a kill at any instant the same command writes
only the missing shards: no id is missing or written twice, and the vectors equal an uninterrupted run's. The
manifest records the model's fingerprint and a hash of the plan: an output folder made by another model, or from
other records, is refused instead of mixed.

Records that cannot be embedded (no text) are found before the model loads: `--on-error stop` names the first,
`skip` leaves them out and lists them in OUT/skipped.jsonl. A reasoning embedding writes each record's reasoning into
OUT/reasoning (the reasoning cache, `moon_rl.reasoning_cache`) as it goes: the expensive part survives a kill too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from moon_rl.errors import MoonError
from moon_rl.eval.lexical import record_text  # what the no-reasoning vector reads; the index keeps it as `text`
from moon_rl.index.store import MANIFEST, SKIPPED, FORMAT, read_manifest, shard_path, write_manifest, write_shard

ON_ERROR = ("stop", "skip")


@dataclasses.dataclass
class EmbedConfig:
    model: str = ""
    data: str = ""
    out: str = ""
    split: str | None = None  # a catalog split (splits/<split>.txt), e.g. corpus; None: every record
    reasoning: bool = True  # a reasoning embedding reads its vector after its own reasoning; False: the no-reasoning vector
    max_new_tokens: int | None = None
    batch_size: int = 32
    shard_size: int = 1024
    on_error: str = "stop"
    device: str = "cpu"
    base_model: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise MoonError(f"--on-error {self.on_error!r}: choose one of {', '.join(ON_ERROR)}")
        for name in ("batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise MoonError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


def read_records(data: str | Path, split: str | None = None) -> list:
    """A catalog folder (products.jsonl; `split` picks splits/<split>.txt) as Products, or a text file as one Query a
    non-empty line, its id the line number."""
    from moon_rl.records import Query

    path = Path(data).expanduser()
    if path.is_dir():
        from data_prep.errors import DataPrepError
        from data_prep.schema import load_catalog

        try:
            return load_catalog(path, split=split)
        except (DataPrepError, FileNotFoundError, ValueError) as err:
            raise MoonError(f"--data {path}: {err}") from None
    if not path.is_file():
        raise MoonError(f"--data {path}: no such file or folder (give a catalog folder or a text file, one record a line)")
    if split is not None:
        raise MoonError("--split applies to a catalog folder, not to a text file")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Query(text=line.strip(), id=f"line-{n}") for n, line in enumerate(lines, 1) if line.strip()]


def plan_hash(ids: list[str], shard_size: int) -> str:
    digest = hashlib.sha256(str(shard_size).encode())
    for pid in ids:
        digest.update(pid.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def check_ids(records: list) -> None:
    seen: set[str] = set()
    for r in records:
        if not r.id:
            raise MoonError("a record has no id; every record needs one (catalog `id`, or a line of a text file)")
        if r.id in seen:
            raise MoonError(f"record id {r.id!r} occurs twice in --data; ids must be unique to be searched")
        seen.add(r.id)


def usable(records: list, on_error: str, out: Path) -> list:
    """Records with text to embed; the others stop the run (`stop`) or go to OUT/skipped.jsonl (`skip`)."""
    bad = [r for r in records if not record_text(r).strip()]
    if bad and on_error == "stop":
        raise MoonError(f"record {bad[0].id!r} has no text to embed ({len(bad)} such record(s)); fix them or pass --on-error skip")
    if bad:
        out.mkdir(parents=True, exist_ok=True)
        (out / SKIPPED).write_text("".join(json.dumps({"id": r.id, "why": "no text"}) + "\n" for r in bad), encoding="utf-8")
        print(f"skipped {len(bad)} record(s) with no text: {out / SKIPPED}", file=sys.stderr)
    return [r for r in records if record_text(r).strip()]


def encode_shard(model, shard: list, cfg: EmbedConfig, cache: Path | None, out: Path):
    """(records kept, (n, D) vectors, reasonings) of one shard. A failure stops the run naming the shard's records
    (`stop`), or (`skip`) the shard is encoded record by record and the records that fail go to OUT/skipped.jsonl."""
    import numpy as np

    def encode(records):
        vectors, reasonings = model.encode_with_completions(
            records, batch_size=cfg.batch_size, reasoning=cfg.reasoning, max_new_tokens=cfg.max_new_tokens, progress=False,
            reasoning_cache=cache,
        )
        return vectors.numpy(), reasonings

    try:
        vectors, reasonings = encode(shard)
        return shard, vectors, reasonings
    except (MoonError, RuntimeError, ValueError) as err:
        if cfg.on_error == "stop":
            raise MoonError(f"embedding records {shard[0].id!r} .. {shard[-1].id!r} failed: {err}; pass --on-error skip to leave failing records out") from None
    kept, vecs, texts = [], [], []
    with (out / SKIPPED).open("a", encoding="utf-8") as log:
        for record in shard:
            try:
                v, t = encode([record])
            except (MoonError, RuntimeError, ValueError) as err:
                log.write(json.dumps({"id": record.id, "why": str(err)[:300]}) + "\n")
                continue
            kept.append(record)
            vecs.append(v)
            texts += t
    return kept, (np.concatenate(vecs) if vecs else np.zeros((0, model.embedding_dim), dtype=np.float32)), texts


def command_line(cfg: EmbedConfig) -> str:
    """The `moon-rl embed` command that makes (and resumes) this index."""
    import shlex

    args = ["moon-rl", "embed", "--model", cfg.model, "--data", str(cfg.data), "--out", str(cfg.out)]
    args += ["--split", cfg.split] if cfg.split else []
    args += [] if cfg.reasoning else ["--no-reasoning"]
    args += ["--max-new-tokens", str(cfg.max_new_tokens)] if cfg.max_new_tokens else []
    args += ["--batch-size", str(cfg.batch_size), "--shard-size", str(cfg.shard_size), "--on-error", cfg.on_error]
    args += ["--device", cfg.device] if cfg.device != "cpu" else []
    args += ["--base-model", cfg.base_model] if cfg.base_model else []
    return shlex.join(args)


@dataclasses.dataclass
class EmbedPlan:
    """What every embedding run of `cfg` agrees on before a model loads: the records in shard order, the shards still
    to write, and the manifest's identity fields. The single-process and Ray paths both run this plan."""

    cfg: EmbedConfig
    out: Path
    records: list
    n_shards: int
    model_dir: Path
    fingerprint: str
    plan: str
    todo: list[int]

    def shard(self, i: int) -> list:
        return self.records[i * self.cfg.shard_size : (i + 1) * self.cfg.shard_size]


def make_plan(cfg: EmbedConfig) -> EmbedPlan:
    from moon_rl.file_checks import check_fresh_output
    from moon_rl.model_dir import resolve_model_dir
    from moon_rl.reasoning_cache import model_fingerprint
    from moon_rl.records import longest_first

    out = Path(cfg.out).expanduser()
    check_fresh_output(out, out_flag="--out")
    records = read_records(cfg.data, cfg.split)
    check_ids(records)
    records = usable(records, cfg.on_error, out)
    if not records:
        raise MoonError(f"--data {cfg.data}: no record to embed")
    records = [records[i] for i in longest_first(records)]
    n_shards = -(-len(records) // cfg.shard_size)
    model_dir = resolve_model_dir(cfg.model)
    fingerprint = model_fingerprint(model_dir)
    plan = plan_hash([r.id for r in records], cfg.shard_size)
    earlier = read_manifest(out)
    if earlier is not None:
        if earlier["model_fingerprint"] != fingerprint:
            raise MoonError(
                f"--out {out}: holds vectors of another model ({earlier['model']}, fingerprint {earlier['model_fingerprint']}, "
                f"this one {fingerprint}); embed into a new folder"
            )
        if earlier["plan"] != plan or earlier["reasoning"] != cfg.reasoning:
            raise MoonError(f"--out {out}: holds an index of other records or settings; embed into a new folder")
    todo = [i for i in range(n_shards) if not shard_path(out, i).is_file()]
    return EmbedPlan(cfg, out, records, n_shards, model_dir, fingerprint, plan, todo)


def load_model(plan: EmbedPlan):
    from moon_rl.inference import load

    return load(plan.model_dir, device=plan.cfg.device, base_model=plan.cfg.base_model)


def model_fields(model, reasoning: bool) -> dict[str, Any]:
    """What the manifest says about the vectors, read from a loaded model."""
    reads = reasoning and model.reads_reasoning
    return {"pooling": model.pooling or "mean (no head)", "dimension": int(model.embedding_dim),
            "vector": "read after the model's own reasoning" if reads else "no reasoning (the record's text)"}


def start_manifest(plan: EmbedPlan, fields: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest, `complete: false`, written before the first shard (a folder with shards always has one, so a
    resumed run recognises it). `fields` (`model_fields`) may come later, from whoever loaded the model."""
    cfg = plan.cfg
    manifest = {
        "format": FORMAT, "model": str(plan.model_dir), "model_fingerprint": plan.fingerprint, "reasoning": cfg.reasoning,
        "pooling": None, "dimension": None, "vector": None, "count": None, "planned": len(plan.records), "shards": plan.n_shards,
        "shard_size": cfg.shard_size, "plan": plan.plan, "data": str(cfg.data), "split": cfg.split, "command": command_line(cfg),
        "complete": False, **(fields or {}),
    }
    write_manifest(plan.out, manifest)
    return manifest


def write_one_shard(plan: EmbedPlan, model, i: int) -> int:
    """Encode and write shard i (whole or not at all); returns the records it covered."""
    cache = plan.out / "reasoning" if plan.cfg.reasoning and model.reads_reasoning else None
    planned = plan.shard(i)
    kept, vectors, reasonings = encode_shard(model, planned, plan.cfg, cache, plan.out)
    write_shard(shard_path(plan.out, i), [r.id for r in kept], vectors, [record_text(r) for r in kept], reasonings)
    return len(planned)


def finish(plan: EmbedPlan, manifest: dict[str, Any], seconds: float) -> dict[str, Any]:
    import pyarrow.parquet as pq

    missing = [i for i in range(plan.n_shards) if not shard_path(plan.out, i).is_file()]
    if missing:
        raise MoonError(f"--out {plan.out}: shard(s) {missing[:5]} were not written; run the same command again")
    count = sum(pq.ParquetFile(shard_path(plan.out, i)).metadata.num_rows for i in range(plan.n_shards))
    manifest.update(complete=True, count=count, skipped_while_encoding=len(plan.records) - count, seconds_this_run=round(seconds, 1))
    write_manifest(plan.out, manifest)
    return manifest


def run_embed(cfg: EmbedConfig) -> dict[str, Any]:
    """Embed `cfg.data` into `cfg.out` (see module doc); returns the manifest."""
    from tqdm.auto import tqdm

    plan = make_plan(cfg)
    model = load_model(plan)
    manifest = start_manifest(plan, model_fields(model, cfg.reasoning))
    done = len(plan.records) - sum(len(plan.shard(i)) for i in plan.todo)
    t0 = time.perf_counter()
    with tqdm(total=len(plan.records), initial=done, desc="embed", unit="rec", disable=not cfg.progress, dynamic_ncols=True) as bar:
        for i in plan.todo:
            bar.update(write_one_shard(plan, model, i))
    return finish(plan, manifest, time.perf_counter() - t0)


__all__ = ["EmbedConfig", "EmbedPlan", "make_plan", "run_embed", "read_records", "MANIFEST"]
