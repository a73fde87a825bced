"""A second hostile-input suite (issue 19), written apart from test_hostile_inputs.py: each probe tries one
careless or hostile input on a `moon-rl` command, in this process (typer's CliRunner), and asserts

- a non-zero exit, no traceback (the exception, if any, is click's exit), and
- exactly one `error:` line, naming the offending file or record, and
- the inputs unchanged: checksums of every input file (symlinks: their targets) before and after.

Probes that cannot fail in that shape (a warning on a silent surprise, a pickle that must never run) say so.
The classes follow the issue: paths that leave their root, files that are not what they claim, numbers out of
range, outputs that replace or mix with inputs, faults of the machine, silent surprises (the first two classes live in
test_hostile_probes_files.py; shared helpers and fixtures in hostile_probes_support.py). Everything fails
before a model loads, except the disk-full probe during a checkpoint save (one tiny SFT step).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner
from hostile_probes_support import SFT_FAST, base_catalog, catalog, fake_run, pairs_file, png, prep, prepared_text, prepared_vl, probe, refused, run, text_model  # noqa: F401  (fixtures among them)


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
    ck = fake_run(text_model, run_dir)
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
