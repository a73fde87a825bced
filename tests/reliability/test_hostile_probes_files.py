"""The second hostile-input suite's first two classes (issue 19; see test_hostile_probes.py for the shape of every
probe): paths that leave their root (catalog images, pairs files, prepared datasets, ImplicitAVE) and files that are
not what they claim (images, model folders, GGUF files, checkpoints, configs, prepared datasets).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "moon_rl"))
from gguf_support import truncate_copy, with_architecture  # noqa: E402
from hostile_probes_support import SFT_FAST, base_catalog, bomb_png, catalog, evil_pickle, fake_run, gguf_file, pairs_file, png, prep, prepared_text, prepared_vl, probe, run, set_images, tamper_images, text_model, train_id, vl_model  # noqa: F401  (fixtures among them)


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


@pytest.mark.parametrize("kind", ["pickle_optimizer", "truncated_adapter"])
def test_resume_checkpoint_not_what_it_claims(text_model, prepared_text, tmp_path, kind):
    run_dir = tmp_path / "run"
    ck = fake_run(text_model, run_dir)
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
    ck = fake_run(text_model, tmp_path / "run")
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

