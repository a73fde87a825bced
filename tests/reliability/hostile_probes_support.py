"""Shared pieces of the second hostile-input suite (test_hostile_probes.py, test_hostile_probes_files.py): the probe
runner and its assertions, hostile files, and the suite's own 12-product catalog and prepared datasets (fixtures,
imported by name into each test module; they replace conftest's 8-product catalog there)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from moon_rl.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "moon_rl"))
from gguf_support import truncate_copy, with_architecture, write_tiny_gguf  # noqa: E402

SFT_FAST = ["--set", "report_to=none", "--set", "max_length=128", "--set", "embedding_dim=16"]




# ---- helpers --------------------------------------------------------------------------------------


def run(args) -> "object":
    args = [str(a) for a in args]
    return CliRunner().invoke(app, args)


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots` (a symlink: its target text), keyed by path."""
    sums: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        paths = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
        for p in paths:
            if p.is_symlink():
                sums[str(p)] = "link:" + os.readlink(p)
            elif p.is_file():
                sums[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.is_dir():
                sums[str(p)] = "dir"
    return sums


def refused(result, *names: str) -> str:
    """The probe's common assertion; returns the error line."""
    out = result.output
    assert result.exit_code != 0, f"exit 0 for a hostile input:\n{out}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"raw exception {type(result.exception).__name__}: {result.exception}\n{out}"
    )
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one error: line, got {errors}\n{out}"
    if names:
        assert any(n in errors[0] for n in names), f"error line names none of {names}: {errors[0]}"
    return errors[0]


def probe(args, inputs, *names):
    """Run `args`; assert refused naming one of `names`, inputs unchanged."""
    before = snapshot(*inputs)
    result = run(args)
    line = refused(result, *names)
    assert snapshot(*inputs) == before, "an input changed"
    return line


def png(path: Path, colour=(10, 200, 30), size=8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, format="PNG")
    return path


def bomb_png(path: Path, width=30000, height=30000) -> Path:
    """A valid PNG header declaring width x height pixels, with one tiny IDAT: decoded, a bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


class _Evil:
    """Unpickled, it creates the file named in `marker`: proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Evil(marker)))
    return path


def train_id(catalog: Path) -> str:
    return (catalog / "splits" / "train.txt").read_text().split()[0]


def set_images(catalog: Path, pid: str, refs: list[str]) -> None:
    lines = (catalog / "products.jsonl").read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        rec = json.loads(line)
        if rec["id"] == pid:
            rec["images"] = refs
        out.append(json.dumps(rec))
    (catalog / "products.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")


# ---- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_catalog(tmp_path_factory):
    from data_prep.synth import SynthConfig, synth_catalog

    out = tmp_path_factory.mktemp("probe-cat") / "catalog"
    synth_catalog(out, SynthConfig(products=12, seed=0, image_size=16), progress=False)
    return out


@pytest.fixture
def catalog(base_catalog, tmp_path):
    """A private copy (the probes edit it), inside tmp_path/work; tmp_path/outside is beside it."""
    dst = tmp_path / "work" / "catalog"
    shutil.copytree(base_catalog, dst)
    png(tmp_path / "outside" / "real.png", (250, 0, 0))
    (tmp_path / "outside" / "secret.txt").write_text("root:x:0:0:secret\n")
    return dst


@pytest.fixture(scope="module")
def text_model(tiny_model_dir):
    return tiny_model_dir("qwen2")


@pytest.fixture(scope="module")
def vl_model(tiny_model_dir):
    return tiny_model_dir("qwen2_5_vl")


@pytest.fixture(scope="module")
def prepared_vl(base_catalog, tmp_path_factory):
    from data_prep.tasks import prepare_task

    out = tmp_path_factory.mktemp("probe-vl") / "sft"
    prepare_task("sft", base_catalog, out, progress=False)
    grpo = out.parent / "grpo"
    prepare_task("grpo", base_catalog, grpo, progress=False)
    return out, grpo


@pytest.fixture(scope="module")
def prepared_text(base_catalog, tmp_path_factory):
    from data_prep.tasks import prepare_task

    out = tmp_path_factory.mktemp("probe-text") / "sft"
    prepare_task("sft", base_catalog, out, with_images=False, progress=False)
    return out


@pytest.fixture(scope="module")
def gguf_file(text_model, tmp_path_factory):
    return write_tiny_gguf(text_model, tmp_path_factory.mktemp("probe-gguf") / "tiny.gguf")


def tamper_images(src: Path, dst: Path, image: dict) -> Path:
    """A copy of the prepared dataset `src` whose first row's images are [image] (raw {"bytes", "path"})."""
    from datasets import Image as ImageFeature
    from datasets import List, load_from_disk

    from datasets import Value

    ds = load_from_disk(str(src)).cast_column("images", List(ImageFeature(decode=False)))
    ds = ds.map(lambda row, i: {"images": [image] if i == 0 else row["images"]}, with_indices=True)
    if image["bytes"] is not None:
        ds.cast_column("images", List(ImageFeature())).save_to_disk(str(dst))
        return dst
    # save_to_disk would embed the bytes of a local path (reading /etc/passwd itself): save the column as a plain
    # struct, then call it an Image column in the metadata, as a hand-made hostile dataset would.
    ds.cast_column("images", List({"bytes": Value("binary"), "path": Value("string")})).save_to_disk(str(dst))
    image_feature = {"feature": {"_type": "Image"}, "_type": "List"}
    info = json.loads((dst / "dataset_info.json").read_text())
    info["features"]["images"] = image_feature
    (dst / "dataset_info.json").write_text(json.dumps(info))
    reloaded = load_from_disk(str(dst))
    assert isinstance(reloaded.features["images"].feature, ImageFeature), reloaded.features["images"]
    return dst


def pairs_file(folder: Path, a_ref: str, b_ref: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    png(folder / "img" / "ok.png")
    lines = [
        {"id": "p1", "a": {"image": a_ref}, "b": {"image": b_ref or "img/ok.png"}, "better": "a"},
        {"id": "p2", "a": {"image": "img/ok.png"}, "b": {"text": "a blue shirt"}, "better": "b"},
    ]
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def prep(catalog: Path, out: Path, task="sft", *extra):
    return ["data", "prepare", "--task", task, "--catalog", catalog, "--out", out, *extra]


def fake_run(text_model: Path, run: Path, step: int = 1) -> Path:
    """A run folder with one complete checkpoint, as far as the checks before loading can tell."""
    ck = run / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    (ck / "moon_rl_complete.json").write_text(json.dumps({"step": step}))
    (ck / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(text_model), "peft_type": "LORA"}))
    shutil.copy(text_model / "model.safetensors", ck / "adapter_model.safetensors")
    return ck
