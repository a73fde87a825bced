"""Shared test fixtures. Everything runs offline on CPU; models are tiny and built locally.

`tiny_model_dir(arch="qwen2_5_vl", size="tiny") -> Path` builds each (arch, size) once per test
session (seed 0, `moon_rl.models.tiny.make_tiny_model`) and hands every call a fresh copy, so a test
may write into its folder (save a checkpoint, change the config) without affecting other tests.
"""

from __future__ import annotations

import os

# Before transformers / huggingface_hub / tokenizers are imported by any test module.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# The models here are a few hundred thousand parameters: thread start-up costs more than it saves, and
# two test processes (the 2-process GRPO run) would fight over the 2 cores. Override by exporting it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import itertools  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Factory: `tiny_model_dir(arch="qwen2_5_vl", size="tiny")` -> path to a private copy of the model."""
    from moon_rl.models.tiny import make_tiny_model

    built: dict[tuple[str, str], Path] = {}
    copies = itertools.count()

    def factory(arch: str = "qwen2_5_vl", size: str = "tiny") -> Path:
        key = (arch, size)
        if key not in built:
            built[key] = make_tiny_model(arch, tmp_path_factory.mktemp(f"tiny-{arch}-{size}") / "model", size=size)
        copy = tmp_path_factory.mktemp("tiny-copy") / f"{arch}-{size}-{next(copies)}"
        shutil.copytree(built[key], copy)
        return copy

    return factory


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for every test, even when a test module imported torch before OMP_NUM_THREADS
    took effect: tiny models run several times faster that way on a busy 2-core machine
    (benchmarks/eval_speed.py). Export MOON_TEST_THREADS=N to use N."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("MOON_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(previous)
