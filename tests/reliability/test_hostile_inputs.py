"""Hostile inputs at every door (issue 19): each probe is one command a careless or hostile user could type.

Every failing probe asserts the same four things (`refused`): a non-zero exit, no traceback, exactly one
`error: ...` line that names the offending file or record, and every input byte-identical afterwards
(SHA-256 of each file before and after). The seven classes:

1. paths that leave the catalog (`..`, absolute, symlinks, URLs): test_hostile_catalog_files.py;
2. files that are not what they claim (corrupt, empty, truncated, text-as-image, decompression bombs): same file;
3. model, adapter and checkpoint files (truncated / random safetensors, pickles, no tokenizer, unknown
   architecture, a file given as --model);
4. numbers out of range, binary configs, truncated datasets;
5. outputs that would replace or mix with inputs (--out = --data, export --force over a run, ...);
6. faults of the machine (disk full, permission denied) during saves;
7. silent surprises (eval without a held-out split warns; `rewards check` ends on a summary line).

Commands run in-process through typer's CliRunner (`cli` fixture); each refusal happens before any model is
loaded, so the whole file takes seconds apart from two tiny training runs (class 6) and one tiny eval (7).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
from reliability_support import checksums, refused, tiny_sft_args

from hostile_inputs_support import model_copy, pickle_bytes, prepare_args, random_run, run_copy, sft_args, text_model, truncated  # noqa: F401  (fixtures among them)


# ---- 3. model, adapter and checkpoint files ----------------------------------------------------------------


def _break_weights(model: Path, how: str) -> Path:
    file = model / "model.safetensors"
    data = file.read_bytes()
    if how == "truncated":
        file.write_bytes(truncated(data))
    elif how == "random":
        file.write_bytes(os.urandom(4096))
    elif how == "empty":
        file.write_bytes(b"")
    elif how == "header-too-large":
        file.write_bytes(b"\xff" * 8 + data[8:1000])
    elif how == "pickle-renamed":
        file.write_bytes(pickle_bytes())
    elif how == "header-not-json":
        file.write_bytes(struct.pack("<Q", 16) + b"\xff\xfe not json!!!" + data[24:])
    return file


@pytest.mark.parametrize("how", ["truncated", "random", "empty", "header-too-large", "pickle-renamed", "header-not-json"])
def test_broken_model_safetensors(how, cli, model_copy, sft_text_dataset_dir, tmp_path):
    file = _break_weights(model_copy, how)
    refused(cli, sft_args(model_copy, sft_text_dataset_dir, tmp_path / "out"), [model_copy, sft_text_dataset_dir], [str(file)])
    assert not (tmp_path / "out").exists()


def test_pickle_weights_only(cli, model_copy, sft_text_dataset_dir, tmp_path):
    (model_copy / "model.safetensors").unlink()
    (model_copy / "pytorch_model.bin").write_bytes(pickle_bytes())
    line = refused(cli, sft_args(model_copy, sft_text_dataset_dir, tmp_path / "out"), [model_copy], ["pytorch_model.bin", "never unpickles"])
    assert "safetensors" in line


def test_no_tokenizer(cli, model_copy, sft_text_dataset_dir, tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model_copy / name).unlink()
    refused(cli, sft_args(model_copy, sft_text_dataset_dir, tmp_path / "out"), [model_copy], [str(model_copy), "no tokenizer"])


def test_unknown_architecture(cli, model_copy, sft_text_dataset_dir, tmp_path):
    config = json.loads((model_copy / "config.json").read_text())
    config["model_type"] = "moonbeam9000"
    (model_copy / "config.json").write_text(json.dumps(config))
    refused(cli, sft_args(model_copy, sft_text_dataset_dir, tmp_path / "out"), [model_copy], ["config.json", "moonbeam9000"])


@pytest.mark.parametrize("content", [b"\x00\x01binary\xff", b"{not json"], ids=["binary", "broken-json"])
def test_unreadable_config_json(content, cli, model_copy, sft_text_dataset_dir, tmp_path):
    (model_copy / "config.json").write_bytes(content)
    refused(cli, sft_args(model_copy, sft_text_dataset_dir, tmp_path / "out"), [model_copy], ["config.json"])


@pytest.mark.parametrize(
    "name, data, why",
    [
        ("optimizer.pt", pickle_bytes(), "pickle"),
        ("model.bin", pickle_bytes(), "pickle"),
        ("model.safetensors", None, "one weights file"),
        ("notes.txt", b"hello", "not a model"),
        ("products.jsonl", b'{"id": "a"}\n', "not a model"),
    ],
)
def test_model_given_a_file(name, data, why, cli, text_model, sft_text_dataset_dir, tmp_path):
    file = tmp_path / name
    file.write_bytes(data if data is not None else (text_model / "model.safetensors").read_bytes())
    refused(cli, sft_args(file, sft_text_dataset_dir, tmp_path / "out"), [file], [str(file), why])


def test_gguf_file_gets_the_gguf_header_check(tmp_path):
    """The door sends a .gguf file to the GGUF header check (moon_rl.models.gguf), not to the generic
    "not a model" refusal: a header with no tensor table is named as a corrupt GGUF file."""
    from moon_rl.errors import MoonError
    from moon_rl.file_checks import check_model_input

    file = tmp_path / "model.gguf"
    file.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(MoonError, match=r"model\.gguf: .*GGUF"):
        check_model_input(file)


def test_eval_model_given_a_file(cli, base_catalog, tmp_path):
    file = tmp_path / "optimizer.pt"
    file.write_bytes(pickle_bytes())
    refused(cli, ["eval", "--model", file, "--data", base_catalog, "--out", tmp_path / "eval"], [file, base_catalog], [str(file)])


@pytest.mark.parametrize("target", ["adapter_model.safetensors", "moon_extras.safetensors"])
@pytest.mark.parametrize("command", ["eval", "export-adapter"])
def test_truncated_adapter_or_head(command, target, cli, run_copy, base_catalog, tmp_path):
    file = run_copy / target
    file.write_bytes(truncated(file.read_bytes()))
    if command == "eval":
        args = ["eval", "--model", run_copy, "--data", base_catalog, "--out", tmp_path / "eval"]
    else:
        args = ["export-adapter", run_copy, "--out", tmp_path / "export"]
    refused(cli, args, [run_copy, base_catalog], [str(file)])


def test_adapter_as_pickle(cli, run_copy, tmp_path):
    (run_copy / "adapter_model.safetensors").unlink()
    (run_copy / "adapter_model.bin").write_bytes(pickle_bytes())
    refused(cli, ["export-adapter", run_copy, "--out", tmp_path / "export"], [run_copy], [str(run_copy), "adapter_model.bin"])


def _fake_checkpoint(run: Path, step: int, files: dict[str, bytes]) -> Path:
    from moon_rl.trainers.checkpoints import mark_complete

    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    mark_complete(folder, step)
    return folder


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
@pytest.mark.parametrize("content", ["pickle", "random"])
def test_resume_with_a_corrupt_hf_state_file(name, content, cli, text_model, sft_text_dataset_dir, tmp_path):
    out = tmp_path / "run"
    data = pickle_bytes() if content == "pickle" else os.urandom(512)
    folder = _fake_checkpoint(out, 3, {name: data})
    refused(
        cli, sft_args(text_model, sft_text_dataset_dir, out, "--resume", "latest"),
        [out, text_model, sft_text_dataset_dir], [str(folder / name), "not a torch checkpoint file"],
    )  # fmt: skip


def test_resume_with_a_truncated_checkpoint_adapter(cli, text_model, random_run, sft_text_dataset_dir, tmp_path):
    out = tmp_path / "run"
    data = (random_run / "adapter_model.safetensors").read_bytes()
    folder = _fake_checkpoint(out, 2, {"adapter_model.safetensors": truncated(data)})
    refused(cli, sft_args(text_model, sft_text_dataset_dir, out, "--resume", str(folder)), [out], [str(folder / "adapter_model.safetensors")])


# ---- 4. numbers out of range, binary configs, truncated datasets -------------------------------------------


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--max-steps", "-3"], "max_steps"),
        (["--max-steps", "0"], "max_steps"),
        (["--batch-size", "0"], "per_device_train_batch_size"),
        (["--batch-size", "-4"], "per_device_train_batch_size"),
        (["--learning-rate", "-0.001"], "learning_rate"),
        (["--epochs", "0"], "num_train_epochs"),
        (["--seed", "-1"], "seed"),
        (["--set", "lora_r=0"], "lora_r"),
        (["--set", "lora_dropout=1.5"], "lora_dropout"),
        (["--set", "contrastive_temperature=0"], "contrastive_temperature"),
        (["--set", "max_length=0"], "max_length"),
        (["--set", "gradient_accumulation_steps=0"], "gradient_accumulation_steps"),
        (["--set", "warmup_steps=-5"], "warmup_steps"),
        (["--set", "learning_rate=.nan"], "learning_rate"),
        (["--set", "embedding_dim=0"], "embedding_dim"),
        (["--set", "save_steps=0"], "save_steps"),
    ],
    ids=lambda v: v if isinstance(v, str) else "_".join(v),
)
def test_sft_number_out_of_range(extra, field, cli, text_model, sft_text_dataset_dir, tmp_path):
    line = refused(cli, sft_args(text_model, sft_text_dataset_dir, tmp_path / "out", *extra), [text_model, sft_text_dataset_dir], [f"'{field}'"])
    assert "range" in line or "finite" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--num-generations", "1"], "num_generations"),
        (["--set", "temperature=0"], "temperature"),
        (["--set", "top_p=1.5"], "top_p"),
        (["--set", "beta=-0.1"], "beta"),
        (["--max-steps", "-3"], "max_steps"),
    ],
    ids=lambda v: v if isinstance(v, str) else "_".join(v),
)
def test_grpo_number_out_of_range(extra, field, cli, text_model, sft_text_dataset_dir, tmp_path):
    args = ["grpo", "--model", text_model, "--data", sft_text_dataset_dir, "--out", tmp_path / "out", *extra]
    refused(cli, args, [text_model, sft_text_dataset_dir], [f"'{field}'"])


def test_yaml_number_out_of_range_names_the_file(cli, text_model, sft_text_dataset_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: -3\nreport_to: none\n")
    refused(cli, ["sft", "--model", text_model, "--data", sft_text_dataset_dir, "--out", tmp_path / "o", "--config", config], [config], [str(config), "'max_steps'"])


@pytest.mark.parametrize("command", ["sft", "grpo", "eval"])
@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\0\0\0binary", b"max_steps: 3\n\xff\xfe\xfa latin junk\n"], ids=["binary", "not-utf8"])
def test_binary_config(command, content, cli, text_model, sft_text_dataset_dir, base_catalog, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_bytes(content)
    data = base_catalog if command == "eval" else sft_text_dataset_dir
    args = [command, "--model", text_model, "--data", data, "--out", tmp_path / "o", "--config", config]
    refused(cli, args, [config, text_model], [str(config)])


def test_config_is_a_folder(cli, text_model, sft_text_dataset_dir, tmp_path):
    refused(cli, sft_args(text_model, sft_text_dataset_dir, tmp_path / "o")[:-2] + ["--config", tmp_path], [text_model], [str(tmp_path), "folder"])


@pytest.fixture
def truncated_dataset(sft_text_dataset_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(sft_text_dataset_dir, copy)
    arrow = next(copy.glob("*.arrow"))
    arrow.write_bytes(truncated(arrow.read_bytes()))
    return copy


def test_truncated_arrow_dataset_sft(cli, text_model, truncated_dataset, tmp_path):
    refused(cli, sft_args(text_model, truncated_dataset, tmp_path / "out"), [truncated_dataset], [str(truncated_dataset), "truncated or corrupt"])


def test_truncated_arrow_dataset_rewards_check(cli, truncated_dataset):
    refused(cli, ["rewards", "check", "format", "--data", truncated_dataset], [truncated_dataset], [str(truncated_dataset)])


def test_garbage_dataset_info(cli, text_model, sft_text_dataset_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(sft_text_dataset_dir, copy)
    (copy / "state.json").write_bytes(b"\0\0garbage")
    refused(cli, sft_args(text_model, copy, tmp_path / "out"), [copy], [str(copy)])


# ---- 5. outputs that replace or mix with inputs -------------------------------------------------------------


def test_export_force_over_its_own_run(cli, run_copy):
    _fake_checkpoint(run_copy, 1, {"optimizer.pt": b"state"})
    refused(cli, ["export-adapter", run_copy, "--out", run_copy, "--force"], [run_copy], [str(run_copy), "source"])
    assert (run_copy / "checkpoint-1" / "optimizer.pt").is_file()


def test_export_into_its_own_run(cli, run_copy):
    refused(cli, ["export-adapter", run_copy, "--out", run_copy / "export"], [run_copy], ["inside", "source"])


def test_export_around_its_source(cli, run_copy):
    refused(cli, ["export-adapter", run_copy, "--out", run_copy.parent, "--force"], [run_copy], ["holds", "source"])


def test_export_force_over_a_users_folder(cli, random_run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    refused(cli, ["export-adapter", random_run, "--out", mine, "--force"], [mine, random_run], [str(mine), "only an earlier export"])


def test_export_force_over_an_export_holding_more(cli, random_run, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "moon_rl.json").write_text(json.dumps({"export": {"source": "x"}}))
    (out / "datasets").mkdir()
    (out / "datasets" / "keep.arrow").write_bytes(b"data")
    refused(cli, ["export-adapter", random_run, "--out", out, "--force"], [out], [str(out), "datasets/"])


@pytest.mark.parametrize("command", ["export-adapter", "sft", "data-prepare", "data-synth", "eval"])
def test_out_is_an_existing_file(command, cli, random_run, text_model, sft_text_dataset_dir, base_catalog, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    args = {
        "export-adapter": ["export-adapter", random_run, "--out", out],
        "sft": sft_args(text_model, sft_text_dataset_dir, out),
        "data-prepare": prepare_args(base_catalog, out),
        "data-synth": ["data", "synth", "--out", out, "--products", "4"],
        "eval": ["eval", "--model", text_model, "--data", base_catalog, "--out", out],
    }[command]
    refused(cli, args, [out], [str(out), "existing file"])


@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_sft_out_and_its_data(where, cli, text_model, sft_text_dataset_dir, tmp_path):
    data = tmp_path / "work" / "data"
    shutil.copytree(sft_text_dataset_dir, data)
    out = {"same": data, "inside": data / "run", "holding": data.parent}[where]
    refused(cli, sft_args(text_model, data, out), [data], [str(out), "--data"])


def test_sft_out_is_the_model(cli, model_copy, sft_text_dataset_dir):
    refused(cli, sft_args(model_copy, sft_text_dataset_dir, model_copy), [model_copy], [str(model_copy), "--model"])


def test_grpo_out_is_the_data(cli, text_model, sft_text_dataset_dir):
    args = ["grpo", "--model", text_model, "--data", sft_text_dataset_dir, "--out", sft_text_dataset_dir]
    refused(cli, args, [sft_text_dataset_dir], [str(sft_text_dataset_dir), "--data"])


@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_prepare_out_and_its_catalog(where, cli, catalog):
    out = {"same": catalog, "inside": catalog / "sft", "holding": catalog.parent}[where]
    refused(cli, prepare_args(catalog, out), [catalog], [str(out), "--catalog"])


def test_convert_into_the_raw_input_folder(cli, catalog):
    refused(cli, ["data", "prepare", "--source", "catalog", "--input", catalog / "products.jsonl", "--out", catalog], [catalog], [str(catalog), "--input"])


@pytest.mark.parametrize("where", ["same", "inside"])
def test_eval_out_and_the_catalog(where, cli, text_model, catalog):
    out = catalog if where == "same" else catalog / "eval"
    refused(cli, ["eval", "--model", text_model, "--data", catalog, "--out", out], [catalog], [str(out), "--data"])


def test_eval_out_is_the_model(cli, model_copy, base_catalog):
    refused(cli, ["eval", "--model", model_copy, "--data", base_catalog, "--out", model_copy], [model_copy], [str(model_copy), "--model"])


# ---- 6. faults of the machine ----------------------------------------------------------------------------


def _fail_second_checkpoint(monkeypatch, error: BaseException) -> None:
    """The save of checkpoint-2 fails as a full disk would, after checkpoint-1 was completed."""
    import moon_rl.trainers.common as tc

    real = tc.save_extras

    def save_extras(model, folder, *args, **kwargs):
        if "checkpoint-2" in str(folder):
            raise error
        return real(model, folder, *args, **kwargs)

    monkeypatch.setattr(tc, "save_extras", save_extras)


@pytest.mark.parametrize(
    "error, why",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk is full"),
        (RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed"), "write failed"),
        (PermissionError(errno.EACCES, "Permission denied"), "no permission"),
    ],
    ids=["ENOSPC", "torch-writer", "EACCES"],
)
def test_save_failure_names_the_last_complete_checkpoint(error, why, cli, monkeypatch, text_model, sft_text_dataset_dir, tmp_path):
    _fail_second_checkpoint(monkeypatch, error)
    out = tmp_path / "run"
    line = refused(cli, tiny_sft_args(text_model, sft_text_dataset_dir, out, "--max-steps", "2"), [text_model, sft_text_dataset_dir], ["checkpoint-2", why])
    assert f"last complete checkpoint is {out / 'checkpoint-1'}" in line
    from moon_rl.trainers.checkpoints import latest_complete_checkpoint

    assert latest_complete_checkpoint(out) == out / "checkpoint-1"  # the half-written one stays unmarked


def test_disk_full_outside_a_checkpoint(cli, monkeypatch, catalog, tmp_path):
    import datasets

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full)
    refused(cli, prepare_args(catalog, tmp_path / "out"), [catalog], [str(tmp_path / "out"), "disk is full"])


# ---- 7. silent surprises ---------------------------------------------------------------------------------


def test_eval_without_splits_warns(cli, text_model, catalog, tmp_path):
    shutil.rmtree(catalog / "splits")
    before = checksums(catalog)
    result = cli([
        "eval", "--model", text_model, "--data", catalog, "--out", tmp_path / "eval", "--tasks", "retrieval",
        "--no-reasoning", "--no-query-reasoning", "--max-products", "4", "--max-queries", "2",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "no splits/test.txt" in warnings[0] and "training ones included" in warnings[0]
    assert checksums(catalog) == before


def test_rewards_check_ends_on_a_summary_line(cli, tmp_path):
    from datasets import Dataset

    from reliability_support import CUSTOM_REWARDS

    data = tmp_path / "grpo"
    rows = [{"prompt": [{"role": "user", "content": f"p{i}"}], "id": str(i), "attributes": "{}"} for i in range(30)]
    Dataset.from_list(rows).save_to_disk(str(data))
    before = checksums(data)
    result = cli(["rewards", "check", f"{CUSTOM_REWARDS}:broken_nan", "--data", data, "--rows", "30"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: reward") and "completions" in last, last
    assert checksums(data) == before
