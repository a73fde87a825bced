"""Hostile inputs, second round (issue 30): the classes a held-out suite still caught after issue 19.

1. resume files: a checkpoint's optimizer.pt / scheduler.pt / rng_state.pth in torch's own zip format whose pickle
   would run code is named in one line with the way out (delete it, resume from an earlier one), never loaded;
2. outputs: `sft`, `grpo` and `eval` refuse a non-empty --out that holds no moon-rl output unless
   --overwrite-output is given, and still accept their own folders (`--resume latest`, a re-run);
3. outputs next to a file input: `data prepare --task pairwise --out` beside the pairs file works; the file, its
   folder and its images' folder stay refused;
4. defaults: `sft` and `grpo` run with no --config and no --set;
5. reward contract messages: `rewards check` ends on one `error:` line with the reward's own exception, or its
   first bad value and row;
6. eval without splits: report.md's first line says no held-out split existed.

A refused input is asserted the same way as in test_hostile_inputs.py (`reliability_support.refused`): non-zero
exit, no traceback, exactly one `error:` line naming the file or record and the fix, inputs byte-identical.
Everything is refused before a model loads; the runs are the two default runs (one tiny step each, whose
checkpoints class 1 tampers with), one --overwrite-output run and one tiny eval.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from reliability_support import CUSTOM_REWARDS, HOSTILE_REWARDS, checksums, refused, tiny_sft_args

# ---- inputs -----------------------------------------------------------------------------------------------


class _RunsCode:
    """Unpickled, it creates the folder `marker`: proof that the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def code_running_torch_file(path: Path, marker: Path) -> None:
    """torch's own zip format (it passes the format check) holding a pickle that calls os.mkdir when loaded."""
    import torch

    torch.save({"state": {}, "param_groups": [_RunsCode(marker)]}, path)


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def users_folder(path: Path) -> Path:
    """A folder of the user's own files (not a moon-rl output)."""
    (path / "photos").mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    (path / "photos" / "cat.png").write_bytes(png_bytes())
    return path


def pairs_file(folder: Path) -> Path:
    """FOLDER/pairs.jsonl whose images are under FOLDER/img/."""
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "ok.png").write_bytes(png_bytes())
    lines = [
        {"id": "p1", "a": {"image": "img/ok.png"}, "b": {"text": "a navy shirt"}, "better": "a"},
        {"id": "p2", "a": {"text": "a red mug"}, "b": {"image": "img/ok.png"}, "better": "b"},
    ]
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_model(tiny_model_dir):
    return tiny_model_dir("qwen2")


@pytest.fixture(scope="module")
def grpo_data():
    from grpo_support import grpo_dataset_dir

    return grpo_dataset_dir("text")


@pytest.fixture(scope="module")
def random_run(text_model, tmp_path_factory):
    from moon_rl.eval.random_run import write_random_run

    return write_random_run(text_model, tmp_path_factory.mktemp("round2-run") / "run", kind="sft")


def training_args(command: str, model, data, out, *extra) -> list:
    return [command, "--model", model, "--data", data, "--out", out, *extra]


# ---- 1. resume files -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_runs(text_model, sft_text_dataset_dir, grpo_data, tmp_path_factory):
    """Factory: `default_runs(command)` -> (result, out, data, inputs unchanged) of `moon-rl COMMAND --max-steps 1`
    with no --config and no --set, run once per module (class 4 checks it; class 1 tampers with a copy of its
    checkpoint-1, a real one)."""
    from typer.testing import CliRunner

    from moon_rl.cli import app

    done: dict = {}

    def run(command: str):
        if command not in done:
            data = sft_text_dataset_dir if command == "sft" else grpo_data
            out = tmp_path_factory.mktemp(f"round2-{command}") / "run"
            before = checksums(data, text_model)
            result = CliRunner().invoke(app, [str(a) for a in training_args(command, text_model, data, out, "--max-steps", "1")])
            done[command] = (result, out, data, checksums(data, text_model) == before)
        return done[command]

    return run


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
@pytest.mark.parametrize("command", ["sft", "grpo"])
def test_resume_refuses_a_checkpoint_file_that_would_run_code(command, name, cli, text_model, default_runs, tmp_path):
    result, run, data, _ = default_runs(command)
    assert result.exit_code == 0, result.output
    out = tmp_path / "run"
    shutil.copytree(run, out)
    folder = out / "checkpoint-1"
    marker = tmp_path / "pickle-ran"
    code_running_torch_file(folder / name, marker)  # the rest of the checkpoint is intact
    line = refused(
        cli, training_args(command, text_model, data, out, "--resume", "latest", "--max-steps", "2"),
        [out, text_model, data], [str(folder / name), "would call", "mkdir", f"delete {folder}", "earlier checkpoint"],
    )  # fmt: skip
    assert "start without --resume" in line
    assert not marker.exists(), "the pickle was loaded"


# ---- 2. outputs: a non-empty folder the command did not create ----------------------------------------------


@pytest.mark.parametrize("command", ["sft", "grpo", "eval"])
def test_out_is_a_users_non_empty_folder(command, cli, text_model, sft_text_dataset_dir, grpo_data, catalog, tmp_path):
    mine = users_folder(tmp_path / "mine")
    data = {"sft": sft_text_dataset_dir, "grpo": grpo_data, "eval": catalog}[command]
    refused(cli, training_args(command, text_model, data, mine), [mine, text_model, data], [str(mine), "thesis.tex", "--overwrite-output"])
    assert sorted(p.name for p in mine.iterdir()) == ["photos", "thesis.tex"]  # nothing was written into it


def test_overwrite_output_writes_beside_the_users_files(cli, text_model, sft_text_dataset_dir, tmp_path):
    mine = users_folder(tmp_path / "mine")
    before = checksums(mine)
    result = cli(tiny_sft_args(text_model, sft_text_dataset_dir, mine, "--max-steps", "1", "--overwrite-output"))
    assert result.exit_code == 0, result.output
    assert (mine / "adapter_model.safetensors").is_file()
    assert {k: v for k, v in checksums(mine).items() if k in before} == before  # the user's files untouched


def _fake_checkpoint(run: Path, step: int, complete: bool = True) -> None:
    from moon_rl.trainers.checkpoints import mark_complete

    (run / f"checkpoint-{step}").mkdir(parents=True)
    (run / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    if complete:
        mark_complete(run / f"checkpoint-{step}", step)


def _moon_rl_folder(kind: str, random_run: Path, path: Path) -> Path:
    if kind == "finished run":
        shutil.copytree(random_run, path)
    elif kind == "checkpoints only":
        _fake_checkpoint(path, 3)
        (path / "trainer_state.json").write_text("{}")
    elif kind == "killed before its first checkpoint":
        _fake_checkpoint(path, 1, complete=False)
        (path / "runs" / "Jan01").mkdir(parents=True)
    elif kind == "final save cut short":
        _fake_checkpoint(path, 2)
        (path / "moon_rl_saving").write_text("")
        (path / "adapter_model.safetensors").write_bytes(b"half")
    elif kind == "eval report":
        path.mkdir()
        for name in ("metrics.json", "report.md", "recall_at_k.png"):
            (path / name).write_text("x")
    elif kind == "empty":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    "kind", ["finished run", "checkpoints only", "killed before its first checkpoint", "final save cut short", "eval report", "empty", "absent"]
)
def test_fresh_output_accepts_what_moon_rl_wrote(kind, random_run, tmp_path):
    """`--resume latest`, a re-run into the same --out and `eval --out RUN/eval` again keep working."""
    from moon_rl.file_checks import check_fresh_output

    check_fresh_output(_moon_rl_folder(kind, random_run, tmp_path / "out"))


def test_fresh_output_refuses_other_files_unless_allowed(tmp_path):
    from moon_rl.errors import MoonError
    from moon_rl.file_checks import check_fresh_output

    mine = users_folder(tmp_path / "mine")
    (mine / "checkpoint-7").mkdir()  # a folder of that name does not make the rest moon-rl's
    with pytest.raises(MoonError, match=r"--out .*mine: is a non-empty folder.*--embed-overwrite"):
        check_fresh_output(mine, flag="--embed-overwrite")
    check_fresh_output(mine, allow=True)


# ---- 3. outputs next to a file input --------------------------------------------------------------------------


def test_prepare_pairwise_beside_the_pairs_file(cli, tmp_path):
    data = tmp_path / "data"
    pf = pairs_file(data)
    before = checksums(data)
    result = cli(["data", "prepare", "--task", "pairwise", "--pairs", pf, "--out", data / "pairs-ds"])
    assert result.exit_code == 0, result.output
    assert (data / "pairs-ds" / "sft").is_dir() and (data / "pairs-ds" / "grpo").is_dir()
    assert {k: v for k, v in checksums(data).items() if "pairs-ds" not in k} == before


@pytest.mark.parametrize(
    "where, why",
    [
        ("beside", None), ("beside, nested", None), ("the folder", "is the folder of the pairs file"),
        ("the file", "is the pairs file"), ("around", "holds the pairs file"), ("the images", "lies inside"),
        ("inside the images", "lies inside"),
    ],
)  # fmt: skip
def test_pairs_output_guard(where, why, tmp_path):
    """The guard `data prepare --task pairwise` and `eval --tasks pairwise` share."""
    from data_prep.errors import DataPrepError
    from data_prep.pairwise import check_pairs_output

    data = tmp_path / "data"
    pf = pairs_file(data)
    out = {
        "beside": data / "pairs-ds", "beside, nested": data / "runs" / "eval", "the folder": data, "the file": pf,
        "around": tmp_path, "the images": data / "img", "inside the images": data / "img" / "eval",
    }[where]  # fmt: skip
    if why is None:
        check_pairs_output(out, pf)
        return
    with pytest.raises(DataPrepError, match=why) as err:
        check_pairs_output(out, pf)
    assert str(out) in str(err.value)


# ---- 4. defaults ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sft", "grpo"])
def test_runs_on_its_defaults(command, default_runs):
    """No --config, no --set: every default as it ships (one step)."""
    result, out, _, inputs_unchanged = default_runs(command)
    assert result.exit_code == 0, result.output
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and (out / "adapter_model.safetensors").is_file()
    if command == "grpo":  # the contrastive term trained, on a generation batch of two prompts (16 rollouts)
        logged = [h for h in state["log_history"] if "contrastive_loss" in h]
        assert logged and logged[-1]["contrastive/candidates"] == 16
    assert inputs_unchanged


# ---- 5. reward contract messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reward, names",
    [
        (f"{CUSTOM_REWARDS}:broken_nan", ["first bad value on row 0", "non-finite nan"]),
        (f"{CUSTOM_REWARDS}:broken_short", ["returned 21 values for 22 completions"]),
        (f"{HOSTILE_REWARDS}:always_raises", ["raised KeyError: 'attributes'", "row 0"]),
    ],
    ids=["nan", "wrong-length", "raises"],
)
def test_rewards_check_names_the_fault(reward, names, cli, grpo_data):
    reward_file = Path(reward.split(":")[0])
    line = refused(cli, ["rewards", "check", reward, "--data", grpo_data, "--rows", "2"], [grpo_data, reward_file], [reward, *names])
    assert "fix the reward" in line


# ---- 6. eval without splits -----------------------------------------------------------------------------------


def test_eval_without_splits_says_so_first(cli, text_model, catalog, tmp_path):
    shutil.rmtree(catalog / "splits")
    out = tmp_path / "eval"
    before = checksums(catalog)
    result = cli([
        "eval", "--model", text_model, "--data", catalog, "--out", out, "--tasks", "retrieval",
        "--no-reasoning", "--no-query-reasoning", "--max-products", "4", "--max-queries", "2",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("warning: ")]) == 1
    first = (out / "report.md").read_text().splitlines()[0]
    assert first.startswith("# moon-rl eval:") and "no held-out split" in first and "training products included" in first
    assert json.loads((out / "metrics.json").read_text())["held_out"] is False
    assert checksums(catalog) == before
