"""A second hostile-input suite (issue 19), written apart from test_hostile_inputs.py: each probe tries one
careless or hostile input on a `moon-rl` command, in this process (typer's CliRunner), and asserts

- a non-zero exit, no traceback (the exception, if any, is click's exit), and
- exactly one `error:` line, naming the offending file or record, and
- the inputs unchanged: checksums of every input file (symlinks: their targets) before and after.

Probes that cannot fail in that shape (a warning on a silent surprise, a pickle that must never run) say so.
The classes follow the issue: paths that leave their root, files that are not what they claim, numbers out of
range, outputs that replace or mix with inputs, faults of the machine, silent surprises. Everything fails
before a model loads, except the disk-full probe during a checkpoint save (one tiny SFT step).
"""

from __future__ import annotations

import errno
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


# ---- 1. paths that leave their root -----------------------------------------------------------------


@pytest.mark.parametrize("task", ["sft", "grpo"])
@pytest.mark.parametrize("kind", ["dotdot_text", "dotdot_image", "absolute", "symlink_file", "symlink_dir"])
def test_catalog_image_escapes(catalog, tmp_path, task, kind):
    pid = train_id(catalog)
    outside = tmp_path / "outside"
    if kind == "dotdot_text":
        ref = "../../outside/secret.txt"
    elif kind == "dotdot_image":
        ref = "../../outside/real.png"  # a real image: only the path check can stop it
    elif kind == "absolute":
        ref = str(outside / "real.png")
    elif kind == "symlink_file":
        (catalog / "images" / "link.png").symlink_to(outside / "real.png")
        ref = "images/link.png"
    else:
        (catalog / "shots").symlink_to(outside, target_is_directory=True)
        ref = "shots/real.png"
    set_images(catalog, pid, [ref])
    out = tmp_path / "ds"
    probe(prep(catalog, out, task), [catalog, outside], pid, "products.jsonl")
    assert not out.exists() or not any(out.iterdir())


def test_catalog_escape_skipped_never_read(catalog, tmp_path):
    """--on-error skip drops the escaping record; the outside file's bytes are nowhere in the dataset."""
    pid = train_id(catalog)
    set_images(catalog, pid, ["../../outside/real.png"])
    out = tmp_path / "ds"
    result = run(prep(catalog, out, "sft", "--on-error", "skip"))
    assert result.exit_code == 0, result.output
    assert pid in result.output
    secret = (tmp_path / "outside" / "real.png").read_bytes()
    assert not any(secret in p.read_bytes() for p in out.rglob("*.arrow"))


def test_source_catalog_image_escape(catalog, tmp_path):
    pid = train_id(catalog)
    set_images(catalog, pid, ["../../outside/real.png"])
    probe(["data", "prepare", "--source", "catalog", "--input", catalog, "--out", tmp_path / "conv"], [catalog], pid)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_pairs_image_escapes(tmp_path, kind):
    folder = tmp_path / "pairs"
    outside = png(tmp_path / "elsewhere" / "x.png")
    if kind == "dotdot":
        ref = "../elsewhere/x.png"
    elif kind == "absolute":
        ref = str(outside)
    else:
        (folder / "img").mkdir(parents=True)
        (folder / "img" / "link.png").symlink_to(outside)
        ref = "img/link.png"
    pf = pairs_file(folder, ref)
    probe(["data", "prepare", "--task", "pairwise", "--pairs", pf, "--out", tmp_path / "pw"], [folder, outside.parent], "pairs.jsonl")


def test_eval_pairwise_image_escape(tmp_path, text_model):
    folder = tmp_path / "pairs"
    png(tmp_path / "elsewhere" / "x.png")
    pf = pairs_file(folder, "../elsewhere/x.png")
    probe(["eval", "--model", text_model, "--data", pf, "--tasks", "pairwise", "--out", tmp_path / "ev"], [folder, text_model], "pairs.jsonl")


def test_eval_catalog_image_escape(catalog, tmp_path, text_model):
    ids = (catalog / "splits" / "test.txt").read_text().split()
    set_images(catalog, ids[0], ["../../outside/real.png"])
    probe(["eval", "--model", text_model, "--data", catalog, "--out", tmp_path / "ev"], [catalog], ids[0], "products.jsonl")


@pytest.mark.parametrize(
    "image",
    [
        {"bytes": None, "path": "../../../../../../../../etc/passwd"},
        {"bytes": None, "path": "/etc/passwd"},
        {"bytes": b"this is not an image at all", "path": "images/x.png"},
        {"bytes": None, "path": "images/does-not-exist.png"},
    ],
    ids=["dotdot", "absolute", "undecodable", "missing"],
)
def test_prepared_dataset_bad_images(prepared_vl, vl_model, tmp_path, image):
    data = tamper_images(prepared_vl[0], tmp_path / "sft", image)
    probe(["sft", "--model", vl_model, "--data", data, "--out", tmp_path / "run", "--max-steps", "1", *SFT_FAST],
          [data, vl_model], "row 0")


def test_prepared_grpo_dataset_bad_image(prepared_vl, vl_model, tmp_path):
    data = tamper_images(prepared_vl[1], tmp_path / "grpo", {"bytes": None, "path": "/etc/passwd"})
    probe(["grpo", "--model", vl_model, "--data", data, "--out", tmp_path / "run", "--max-steps", "1", "--reward", "format",
           "--set", "report_to=none", "--set", "contrastive_weight=0"], [data, vl_model], "row 0")


def _implicitave(root: Path) -> Path:
    texts = root / "evaluation_data" / "texts"
    texts.mkdir(parents=True)
    rows = [["id", "images", "category", "texts", "attribute_names", "attribute_values"],
            ["E1", "E1.jpg", "Shirts", "[Title] Tee one", "Sleeve Style", "Long Sleeve"],
            ["E2", "E2.jpg", "Shirts", "[Title] Tee two", "Sleeve Style", "Sleeveless"]]
    (texts / "Clothing_annotated_final.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    (texts / "options_Clothing_Shoes_and_Jewelry.json").write_text(json.dumps({"Sleeve Style": ["Long Sleeve", "Sleeveless"]}))
    (root / "evaluation_data" / "images").mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "evaluation_data" / "images" / "E2.jpg", "JPEG")
    return root


def test_implicitave_symlinked_image_outside(tmp_path):
    root = _implicitave(tmp_path / "iave")
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(outside / "E1.jpg", "JPEG")
    (root / "evaluation_data" / "images" / "E1.jpg").symlink_to(outside / "E1.jpg")
    probe(["data", "prepare", "--source", "implicitave", "--input", root, "--out", tmp_path / "cat"], [root, outside], "E1")


# ---- 2. files that are not what they claim ------------------------------------------------------------


def _bad_image(kind: str, path: Path) -> None:
    good = png(path.with_name("good.png"), size=16).read_bytes()
    if kind == "zero":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "text":
        path.write_text("I am a text file pretending to be a JPEG\n")
    elif kind == "bomb":
        bomb_png(path)
    elif kind == "random":
        path.write_bytes(os.urandom(512))


@pytest.mark.parametrize("kind", ["zero", "truncated", "text", "bomb", "random"])
def test_catalog_bad_image_files(catalog, tmp_path, kind):
    pid = train_id(catalog)
    rec = json.loads(next(line for line in (catalog / "products.jsonl").read_text().splitlines() if f'"{pid}"' in line))
    _bad_image(kind, catalog / rec["images"][0])
    probe(prep(catalog, tmp_path / "ds"), [catalog], pid)


def test_pairs_corrupt_image(tmp_path):
    folder = tmp_path / "pairs"
    pf = pairs_file(folder, "img/bad.png")
    (folder / "img" / "bad.png").write_text("not a png")
    probe(["data", "prepare", "--task", "pairwise", "--pairs", pf, "--out", tmp_path / "pw"], [folder], "pairs.jsonl")


def test_pairs_bomb_image(tmp_path):
    folder = tmp_path / "pairs"
    pf = pairs_file(folder, "img/bomb.png")
    bomb_png(folder / "img" / "bomb.png")
    probe(["data", "prepare", "--task", "pairwise", "--pairs", pf, "--out", tmp_path / "pw"], [folder], "pairs.jsonl", "bomb.png")


@pytest.mark.parametrize("kind", ["truncated_weights", "random_weights", "no_tokenizer", "unknown_arch", "pickle_only", "config_binary"])
def test_model_folder_not_what_it_claims(text_model, prepared_text, tmp_path, kind):
    model = tmp_path / "model"
    shutil.copytree(text_model, model)
    marker = tmp_path / "PICKLE_WAS_LOADED"
    weights = model / "model.safetensors"
    if kind == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    elif kind == "random_weights":
        weights.write_bytes(os.urandom(4096))
    elif kind == "no_tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
            (model / name).unlink(missing_ok=True)
    elif kind == "unknown_arch":
        cfg = json.loads((model / "config.json").read_text())
        cfg["model_type"] = "qwen99_imaginary"
        (model / "config.json").write_text(json.dumps(cfg))
    elif kind == "pickle_only":
        weights.unlink()
        evil_pickle(model / "pytorch_model.bin", marker)
    else:
        (model / "config.json").write_bytes(os.urandom(300))
    probe(["sft", "--model", model, "--data", prepared_text, "--out", tmp_path / "run", "--max-steps", "1", *SFT_FAST],
          [model, prepared_text], str(model))
    assert not marker.exists(), "a pickle was loaded"


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".safetensors", ".txt"])
def test_model_is_a_file(text_model, prepared_text, tmp_path, suffix):
    marker = tmp_path / "PICKLE_WAS_LOADED"
    path = tmp_path / f"weights{suffix}"
    if suffix in (".pt", ".bin"):
        evil_pickle(path, marker)
    elif suffix == ".safetensors":
        shutil.copy(text_model / "model.safetensors", path)
    else:
        path.write_text("hello")
    probe(["sft", "--model", path, "--data", prepared_text, "--out", tmp_path / "run", *SFT_FAST], [path], str(path))
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["truncated", "foreign_arch", "text", "empty"])
def test_gguf_not_what_it_claims(gguf_file, prepared_text, tmp_path, kind):
    bad = tmp_path / "bad.gguf"
    if kind == "truncated":
        truncate_copy(gguf_file, bad, 0.4)
    elif kind == "foreign_arch":
        with_architecture(gguf_file, bad, "fakearch")
    elif kind == "text":
        bad.write_text("GGUF? no, just text\n" * 20)
    else:
        bad.write_bytes(b"")
    probe(["sft", "--model", bad, "--data", prepared_text, "--out", tmp_path / "run", *SFT_FAST], [bad, prepared_text], str(bad))


def _fake_run(text_model: Path, run: Path, step: int = 1) -> Path:
    """A run folder with one complete checkpoint, as far as the checks before loading can tell."""
    ck = run / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    (ck / "moon_rl_complete.json").write_text(json.dumps({"step": step}))
    (ck / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(text_model), "peft_type": "LORA"}))
    shutil.copy(text_model / "model.safetensors", ck / "adapter_model.safetensors")
    return ck


@pytest.mark.parametrize("kind", ["pickle_optimizer", "truncated_adapter"])
def test_resume_checkpoint_not_what_it_claims(text_model, prepared_text, tmp_path, kind):
    run_dir = tmp_path / "run"
    ck = _fake_run(text_model, run_dir)
    marker = tmp_path / "PICKLE_WAS_LOADED"
    if kind == "pickle_optimizer":
        evil_pickle(ck / "optimizer.pt", marker)
        name = "optimizer.pt"
    else:
        data = (ck / "adapter_model.safetensors").read_bytes()
        (ck / "adapter_model.safetensors").write_bytes(data[:100])
        name = "adapter_model.safetensors"
    probe(["sft", "--model", text_model, "--data", prepared_text, "--out", run_dir, "--resume", "latest", *SFT_FAST],
          [run_dir, text_model], name)
    assert not marker.exists()


def test_export_truncated_adapter(text_model, tmp_path):
    ck = _fake_run(text_model, tmp_path / "run")
    (ck / "adapter_model.safetensors").write_bytes(os.urandom(64))
    probe(["export-adapter", ck, "--out", tmp_path / "exp"], [ck], "adapter_model.safetensors")


def test_eval_model_truncated_weights(catalog, text_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(text_model, model)
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes()[:1000])
    probe(["eval", "--model", model, "--data", catalog, "--out", tmp_path / "ev"], [catalog, model], "model.safetensors")


@pytest.mark.parametrize("kind", ["binary", "list", "bad_yaml"])
def test_config_file_not_yaml_mapping(prepared_text, text_model, tmp_path, kind):
    cfg = tmp_path / "cfg.yaml"
    if kind == "binary":
        cfg.write_bytes(b"\xff\xfe\x00\x81" + os.urandom(200))
    elif kind == "list":
        cfg.write_text("- a\n- b\n")
    else:
        cfg.write_text("learning_rate: [1, 2\nmax_steps: 3\n")
    probe(["sft", "--model", text_model, "--data", prepared_text, "--out", tmp_path / "run", "--config", cfg], [cfg], "cfg.yaml")


@pytest.mark.parametrize("kind", ["truncated_arrow", "broken_state", "not_a_dataset"])
def test_prepared_dataset_not_what_it_claims(prepared_text, text_model, tmp_path, kind):
    data = tmp_path / "sft"
    shutil.copytree(prepared_text, data)
    if kind == "truncated_arrow":
        arrow = next(data.glob("*.arrow"))
        arrow.write_bytes(arrow.read_bytes()[:200])
    elif kind == "broken_state":
        (data / "state.json").write_text("{ not json")
    else:
        for p in data.iterdir():
            p.unlink()
        (data / "notes.txt").write_text("hi")
    probe(["sft", "--model", text_model, "--data", data, "--out", tmp_path / "run", *SFT_FAST], [data], str(data))


def test_products_jsonl_binary(catalog, tmp_path):
    (catalog / "products.jsonl").write_bytes(os.urandom(400))
    probe(prep(catalog, tmp_path / "ds"), [catalog], "products.jsonl")


# ---- 3. numbers out of range ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--max-steps", "-3"],
        ["--max-steps", "0"],
        ["--batch-size", "0"],
        ["--learning-rate", "-0.001"],
        ["--epochs", "0"],
        ["--seed", "-1"],
        ["--set", "learning_rate=nan"],
        ["--set", "lora_dropout=1.5"],
        ["--set", "contrastive_temperature=0"],
        ["--set", "gradient_accumulation_steps=0"],
        ["--set", "warmup_ratio=2"],
    ],
    ids=lambda a: "_".join(a).strip("-"),
)
def test_sft_numbers_out_of_range(prepared_text, text_model, tmp_path, args):
    field = args[-1].split("=")[0] if args[0] == "--set" else args[0].lstrip("-").replace("-", "_")
    field = {"batch_size": "per_device_train_batch_size", "epochs": "num_train_epochs"}.get(field, field)
    probe(["sft", "--model", text_model, "--data", prepared_text, "--out", tmp_path / "run", *args, *SFT_FAST],
          [prepared_text], field)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize("yaml_text, field", [
    ("max_completion_length: -5\n", "max_completion_length"),
    ("num_generations: 1\n", "num_generations"),
    ("temperature: 0\n", "temperature"),
    ("top_p: 2.0\n", "top_p"),
    ("beta: -1\n", "beta"),
])
def test_grpo_yaml_out_of_range(prepared_text, text_model, tmp_path, yaml_text, field):
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(yaml_text)
    probe(["grpo", "--model", text_model, "--data", prepared_text, "--out", tmp_path / "run", "--config", cfg, "--reward", "format"],
          [cfg, prepared_text], field)


@pytest.mark.parametrize("args, field", [
    (["--batch-size", "0"], "batch_size"),
    (["--max-products", "-1"], "max_products"),  # 0 means no cap
    (["--set", "knn_k=-1"], "knn_k"),
    (["--max-new-tokens", "-4"], "max_new_tokens"),
])
def test_eval_numbers_out_of_range(catalog, text_model, tmp_path, args, field):
    probe(["eval", "--model", text_model, "--data", catalog, "--out", tmp_path / "ev", *args], [catalog], field)


def test_eval_yaml_out_of_range(catalog, text_model, tmp_path):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("curve_k: 0\n")
    probe(["eval", "--model", text_model, "--data", catalog, "--out", tmp_path / "ev", "--config", cfg], [catalog, cfg], "curve_k")


@pytest.mark.parametrize("args", [["--products", "-5"], ["--image-size", "0"], ["--products", "0"]], ids=["neg_products", "zero_size", "zero_products"])
def test_synth_numbers_out_of_range(tmp_path, args):
    result = run(["data", "synth", "--out", tmp_path / "syn", *args])
    refused(result, args[0])


# ---- 4. outputs that replace or mix with inputs ------------------------------------------------------------


@pytest.mark.parametrize("where", ["same", "inside", "holds", "file"])
def test_prepare_out_vs_catalog(catalog, where):
    out = {"same": catalog, "inside": catalog / "sft", "holds": catalog.parent, "file": catalog / "products.jsonl"}[where]
    probe(prep(catalog, out), [catalog], str(out))


@pytest.mark.parametrize("where", ["folder", "file", "inside_images"])
def test_prepare_pairwise_out_vs_pairs(tmp_path, where):
    folder = tmp_path / "pairs"
    pf = pairs_file(folder, "img/ok.png")
    out = {"folder": folder, "file": pf, "inside_images": folder / "img"}[where]
    probe(["data", "prepare", "--task", "pairwise", "--pairs", pf, "--out", out], [folder], str(out))


def test_prepare_source_out_is_input(catalog):
    probe(["data", "prepare", "--source", "catalog", "--input", catalog, "--out", catalog], [catalog], str(catalog))


def test_synth_out_is_a_file(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    probe(["data", "synth", "--out", f, "--products", "4"], [f], str(f))


def test_synth_force_over_user_folder(tmp_path):
    """--force replaces a catalog moon-rl wrote, not a user's folder that happens to hold images/."""
    user = tmp_path / "photos"
    png(user / "images" / "holiday.png")
    (user / "products.jsonl").write_text('{"mine": true}\n')
    probe(["data", "synth", "--out", user, "--products", "4", "--force"], [user], str(user))


def test_synth_pairs_into_catalog(catalog):
    probe(["data", "synth", "--out", catalog, "--pairs", "4", "--force"], [catalog], str(catalog))


@pytest.mark.parametrize("where", ["data", "inside_data", "model", "file"])
def test_sft_out_vs_inputs(prepared_text, text_model, tmp_path, where):
    data = tmp_path / "sft"
    shutil.copytree(prepared_text, data)
    f = tmp_path / "a-file"
    f.write_text("x")
    out = {"data": data, "inside_data": data / "run", "model": text_model, "file": f}[where]
    probe(["sft", "--model", text_model, "--data", data, "--out", out, *SFT_FAST], [data, text_model, f], str(out))


@pytest.mark.parametrize("where", ["data", "holds_model"])
def test_grpo_out_vs_inputs(prepared_text, text_model, tmp_path, where):
    data = tmp_path / "d" / "grpo"
    shutil.copytree(prepared_text, data)
    out = {"data": data, "holds_model": text_model.parent}[where]
    probe(["grpo", "--model", text_model, "--data", data, "--out", out, "--reward", "format"], [data, text_model], str(out))


@pytest.mark.parametrize("where", ["catalog", "inside_catalog", "file"])
def test_eval_out_vs_inputs(catalog, text_model, where):
    out = {"catalog": catalog, "inside_catalog": catalog / "images" / "eval", "file": catalog / "products.jsonl"}[where]
    probe(["eval", "--model", text_model, "--data", catalog, "--out", out], [catalog], str(out))


@pytest.mark.parametrize("where", ["folder", "file"])
def test_eval_pairwise_out_vs_pairs(text_model, tmp_path, where):
    folder = tmp_path / "pairs"
    pf = pairs_file(folder, "img/ok.png")
    out = folder if where == "folder" else pf
    probe(["eval", "--model", text_model, "--data", pf, "--tasks", "pairwise", "--out", out], [folder], str(out))


@pytest.mark.parametrize("where", ["same_force", "inside", "user_folder_force", "holds"])
def test_export_out_vs_inputs(text_model, tmp_path, where):
    run_dir = tmp_path / "run"
    ck = _fake_run(text_model, run_dir)
    (run_dir / "trainer_state.json").write_text("{}")
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    args = {
        "same_force": [run_dir, "--out", run_dir, "--force"],
        "inside": [run_dir, "--out", run_dir / "export"],
        "user_folder_force": [ck, "--out", user, "--force"],
        "holds": [ck, "--out", run_dir, "--force"],
    }[where]
    probe(["export-adapter", *args], [run_dir, user], str(args[2]))


@pytest.mark.parametrize("where", ["file", "user_folder"])
def test_models_get_out(tmp_path, where):
    if where == "file":
        out = tmp_path / "notes.txt"
        out.write_text("mine")
    else:
        out = tmp_path / "mine"
        out.mkdir()
        (out / "thesis.tex").write_text("precious")
    probe(["models", "get", "smollm2-135m-instruct", "--out", out, "--no-install", "--no-verify"], [out], str(out))


# ---- 5. faults of the machine ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_prepare_save_fails(catalog, tmp_path, monkeypatch, code):
    import datasets

    out = tmp_path / "ds"

    def fail(self, path, *a, **k):
        raise OSError(code, os.strerror(code), str(Path(path) / "data-00000-of-00001.arrow"))

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", fail)
    probe(prep(catalog, out), [catalog], str(out))


def test_synth_disk_full(tmp_path, monkeypatch):
    def fail(self, fp, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", fail)
    probe(["data", "synth", "--out", tmp_path / "syn", "--products", "4"], [], str(tmp_path / "syn"))


def test_pairwise_save_permission(tmp_path, monkeypatch):
    import datasets

    folder = tmp_path / "pairs"
    pf = pairs_file(folder, "img/ok.png")
    out = tmp_path / "pw"

    def fail(self, path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", fail)
    probe(["data", "prepare", "--task", "pairwise", "--pairs", pf, "--out", out], [folder], str(out))


def test_sft_checkpoint_disk_full(prepared_text, text_model, tmp_path, monkeypatch):
    """A full disk while saving checkpoint-1: one line naming the path and that no checkpoint is complete."""
    import transformers

    def fail(self, output_dir, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(output_dir) / "optimizer.pt"))

    monkeypatch.setattr(transformers.Trainer, "_save_optimizer_and_scheduler", fail)
    run_dir = tmp_path / "run"
    line = probe(["sft", "--model", text_model, "--data", prepared_text, "--out", run_dir, "--max-steps", "1", "--batch-size", "4",
                  "--set", "save_steps=1", "--set", "logging_steps=1", "--set", "contrastive_weight=0", *SFT_FAST],
                 [prepared_text, text_model], "checkpoint-1")
    assert "full" in line
    assert not (run_dir / "checkpoint-1" / "moon_rl_complete.json").exists()


# ---- 6. silent surprises -----------------------------------------------------------------------------------


def test_unknown_set_key_lists_valid(prepared_text, text_model, tmp_path):
    line = probe(["sft", "--model", text_model, "--data", prepared_text, "--out", tmp_path / "run", "--set", "lerning_rate=1e-3"],
                 [prepared_text], "lerning_rate")
    assert "learning_rate" in line


def test_duplicate_ids_in_catalog(catalog, tmp_path):
    lines = (catalog / "products.jsonl").read_text().splitlines()
    (catalog / "products.jsonl").write_text("\n".join([*lines, lines[0]]) + "\n")
    probe(prep(catalog, tmp_path / "ds"), [catalog], json.loads(lines[0])["id"])


def test_rewards_check_ends_on_summary(prepared_vl):
    result = run(["rewards", "check", "format", "--data", prepared_vl[1], "--rows", "4"])
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert any(w in last.lower() for w in ("summary", "ok", "violation", "rows", "passed")), last


def test_eval_without_splits_warns(catalog, text_model, tmp_path):
    """Not an error: a warning line that every product, training ones included, is evaluated."""
    shutil.rmtree(catalog / "splits")
    result = run(["eval", "--model", text_model, "--data", catalog, "--out", tmp_path / "ev", "--tasks", "retrieval",
                  "--no-reasoning", "--no-query-reasoning", "--max-products", "6", "--max-queries", "4"])
    assert "Traceback" not in result.output, result.output
    assert any(line.startswith("warning:") and "split" in line for line in result.output.splitlines()), result.output
