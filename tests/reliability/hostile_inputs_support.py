"""Shared pieces of the hostile-input suite (test_hostile_inputs.py, test_hostile_catalog_files.py): hostile file
bytes, the record a probe edits, and fixtures for a tiny model and a random run. Fixtures are imported by name into
each test module."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from reliability_support import SFT_CONFIG

# ---- hostile files -------------------------------------------------------------------------------------


def png_bytes(size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (0, 0, 128)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A few dozen bytes whose header declares width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def pickle_bytes() -> bytes:
    import pickle

    return pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


# ---- fixtures: a prepared dataset, a tiny model, a random run (the small catalog: conftest.py) -------------


def victim_id(catalog: Path) -> str:
    return (catalog / "splits" / "train.txt").read_text().split()[0]


def set_images(catalog: Path, refs: list[str]) -> str:
    """Point the first train record's images at `refs`; returns its id."""
    vid = victim_id(catalog)
    rows = [json.loads(line) for line in (catalog / "products.jsonl").read_text().splitlines()]
    for row in rows:
        if row["id"] == vid:
            row["images"] = refs
    (catalog / "products.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return vid


@pytest.fixture(scope="module")
def text_model(tiny_model_dir):
    return tiny_model_dir("qwen2")


@pytest.fixture
def model_copy(text_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(text_model, copy)
    return copy


@pytest.fixture(scope="module")
def random_run(text_model, tmp_path_factory):
    from moon_rl.eval.random_run import write_random_run

    return write_random_run(text_model, tmp_path_factory.mktemp("hostile-run") / "run", kind="sft")


@pytest.fixture
def run_copy(random_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(random_run, copy)
    return copy


def sft_args(model, data, out, *extra) -> list:
    return ["sft", "--model", model, "--data", data, "--out", out, "--config", SFT_CONFIG, *extra]


def prepare_args(catalog, out, task="sft") -> list:
    return ["data", "prepare", "--task", task, "--catalog", catalog, "--out", out]
