"""`moon-rl embed --ray`: the same embedding as a Ray Data pipeline, for a catalog of millions on a Ray cluster.

    moon-rl embed --model RUN --data CATALOG --out /shared/index --ray                       # a local Ray instance
    moon-rl embed --model RUN --data CATALOG --out /shared/index --ray --ray-address auto    # a running cluster

The plan is the single-process one (`moon_rl.index.embed.make_plan`: records longest first, cut into shards). Ray Data
holds the shards still to write as a dataset, one row a shard; `map_batches` sends them to an actor pool whose actors
each load the model once (`ShardWriter`: one actor per GPU with --device cuda, else one per `cpus_per_actor` CPUs),
and each actor encodes its shard and writes its Parquet file with the single-process writer (`write_one_shard`:
whole or not at all). Why not Ray's `write_parquet`: its files are named by task, so a killed run could not tell
which records are on disk; writing the plan's shard files keeps the index byte-compatible with the single-process
path and resumable the same way (the same command, with or without --ray, writes only the missing shards). On a
cluster, --out must be on storage every node sees. `ray` is an optional extra: `pip install 'moon-rl[ray]'`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from moon_rl.errors import MissingExtraError
from moon_rl.index.store import read_manifest, write_manifest
from moon_rl.index.embed import EmbedConfig, finish, load_model, make_plan, model_fields, start_manifest, write_one_shard


def require_ray():
    try:
        import ray
    except ImportError:
        raise MissingExtraError("moon-rl embed --ray", "ray", "the `ray` package is not installed") from None
    return ray


class ShardWriter:
    """A Ray actor holding the model: writes each shard index it is given (see module doc)."""

    def __init__(self, cfg: dict[str, Any], threads: int):
        import torch

        torch.set_num_threads(threads)
        self.plan = make_plan(EmbedConfig(**cfg))  # the same deterministic plan as the driver's
        self.model = load_model(self.plan)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        done = [write_one_shard(self.plan, self.model, int(i)) for i in batch["shard"]]
        fields = model_fields(self.model, self.plan.cfg.reasoning)  # the driver never loads the model
        return {"shard": np.asarray(batch["shard"]), "records": np.asarray(done),
                **{k: np.asarray([v] * len(done)) for k, v in fields.items()}}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def run_embed_ray(cfg: EmbedConfig, address: str | None = None, cpus_per_actor: int | None = None) -> dict[str, Any]:
    """Embed with Ray Data (see module doc); returns the manifest, as `run_embed` does."""
    from tqdm.auto import tqdm

    ray = require_ray()
    plan = make_plan(cfg)
    earlier = read_manifest(plan.out) or {}
    manifest = start_manifest(plan, {k: earlier[k] for k in ("pooling", "dimension", "vector") if earlier.get(k) is not None})  # the model's fields arrive with the first shard an actor writes
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    try:
        gpu = cfg.device.startswith("cuda")
        total_cpus = int(ray.cluster_resources().get("CPU", 1))
        per_actor = cpus_per_actor or (1 if gpu else total_cpus)
        actors = int(ray.cluster_resources().get("GPU", 0)) if gpu else max(1, total_cpus // per_actor)
        t0 = time.perf_counter()
        done = len(plan.records) - sum(len(plan.shard(i)) for i in plan.todo)
        if plan.todo:
            import logging

            # Our bar below shows the progress; Ray Data's per-operator progress lines (INFO, every few seconds when
            # stdout is not a terminal) would bury it. Ray keeps them in its session logs (/tmp/ray/session_*/logs).
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            ray.data.DataContext.get_current().enable_progress_bars = False
            ds = ray.data.from_items([{"shard": i} for i in plan.todo], override_num_blocks=len(plan.todo))
            ds = ds.map_batches(
                ShardWriter, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(actors, len(plan.todo))), num_cpus=per_actor,
                num_gpus=1 if gpu else 0, fn_constructor_kwargs={"cfg": dataclasses.asdict(cfg), "threads": per_actor},
            )
            with tqdm(total=len(plan.records), initial=done, desc=f"embed (ray, {actors} actor(s))", unit="rec",
                      disable=not cfg.progress, dynamic_ncols=True) as bar:
                for batch in ds.iter_batches(batch_size=1):
                    if manifest["dimension"] is None:
                        manifest.update({k: _plain(batch[k][0]) for k in ("pooling", "dimension", "vector")})
                        write_manifest(plan.out, manifest)
                    bar.update(int(batch["records"][0]))
        if manifest["dimension"] is None:  # nothing left to write: a resumed run finds its fields in the manifest or a model
            manifest.update(model_fields(load_model(plan), cfg.reasoning))
        manifest = finish(plan, manifest, time.perf_counter() - t0)
        manifest["ray"] = {"address": address or "local", "actors": actors, "cpus_per_actor": per_actor}
        write_manifest(plan.out, manifest)
        return manifest
    finally:
        if started:
            ray.shutdown()
