"""`moon-rl data synth` / `moon-rl data prepare`: help, one tiny end-to-end run each, clean errors."""

from __future__ import annotations

import json
import sys
import types

import pytest
from datasets import load_from_disk
from typer.testing import CliRunner

from moon_rl.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "cat"
    result = _run("data", "synth", "--out", str(out), "--products", "20", "--seed", "5")
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("cmd", [["data"], ["data", "synth"], ["data", "prepare"]])
def test_help(cmd):
    result = _run(*cmd, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_synth_writes_a_catalog(catalog):
    lines = (catalog / "products.jsonl").read_text().splitlines()
    assert len(lines) == 20
    assert len(list((catalog / "images").glob("*.png"))) == 20
    assert (catalog / "splits" / "train.txt").is_file() and (catalog / "splits" / "test.txt").is_file()


def test_synth_refuses_a_non_empty_folder(catalog):
    result = _run("data", "synth", "--out", str(catalog), "--products", "5")
    assert result.exit_code == 2
    assert "error:" in result.stderr and "--force" in result.stderr


def test_prepare_sft_end_to_end(catalog, tmp_path):
    out = tmp_path / "sft"
    result = _run("data", "prepare", "--task", "sft", "--catalog", str(catalog), "--out", str(out), "--no-query-rows")
    assert result.exit_code == 0, result.output
    ds = load_from_disk(str(out))
    train_ids = (catalog / "splits" / "train.txt").read_text().split()
    assert ds["id"] == train_ids
    assert json.loads(result.stdout)["rows"] == len(train_ids)
    assert "completion" in ds.column_names and "images" in ds.column_names


def test_prepare_grpo_test_split_text_only(catalog, tmp_path):
    out = tmp_path / "grpo"
    result = _run("data", "prepare", "--task", "grpo", "--catalog", str(catalog), "--out", str(out),
                  "--split", "test", "--no-images")  # fmt: skip
    assert result.exit_code == 0, result.output
    ds = load_from_disk(str(out))
    assert "completion" not in ds.column_names and "images" not in ds.column_names
    assert any("#q" in i for i in ds["id"])  # query rows are on by default


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --task"),
        (["--task", "dpo", "--catalog", "x"], "unknown task"),
        (["--task", "sft"], "--task needs --catalog"),
        (["--source", "catalog"], "--source needs --input"),
        (["--source", "catalog", "--input", "x", "--map", "title"], "expected FIELD=COLUMN"),
        (["--task", "sft", "--catalog", "nowhere"], "not a moon-rl catalog"),
    ],
)
def test_prepare_usage_errors_exit_2(args, message, tmp_path):
    result = _run("data", "prepare", "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and message in result.stderr


def test_prepare_bad_record_names_it(catalog, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(catalog, broken)
    first_train = (broken / "splits" / "train.txt").read_text().split()[0]
    (broken / "images" / f"{first_train}.png").unlink()
    result = _run("data", "prepare", "--task", "sft", "--catalog", str(broken), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert f"id='{first_train}'" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def test_source_and_task_convert_then_prepare(catalog, tmp_path, monkeypatch):
    """--source + --task: convert into OUT/catalog, then build OUT/<task>. The converter is stubbed so this
    tests the wiring only (data_prep.sources has its own tests)."""
    import shutil

    calls = []

    def convert_source(source, input, out, *, mapping, on_error, allow_remote_images):
        calls.append((source, input, out, mapping, on_error, allow_remote_images))
        shutil.copytree(catalog, out)
        return {"source": source, "written": 20}

    monkeypatch.setitem(sys.modules, "data_prep.sources", types.SimpleNamespace(convert_source=convert_source))
    out = tmp_path / "run"
    result = _run("data", "prepare", "--source", "shop", "--input", str(tmp_path / "raw.csv"), "--task", "sft",
                  "--out", str(out), "--map", "title=name", "--on-error", "skip")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls == [("shop", tmp_path / "raw.csv", out / "catalog", {"title": "name"}, "skip", False)]
    assert '"written": 20' in result.stdout
    assert len(load_from_disk(str(out / "sft"))) > 0


def _help_lines(env_columns: str | None, tty_columns: int | None) -> list[str]:
    """`moon-rl data prepare --help` through the console entry point, piped or on a pseudo-terminal."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    if env_columns is not None:
        env["COLUMNS"] = env_columns
    cmd = [sys.executable, "-c", "from moon_rl.cli import main; main()", "data", "prepare", "--help"]
    if tty_columns is None:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120).stdout
        return out.splitlines()
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, tty_columns, 0, 0))
    proc = subprocess.Popen(cmd, stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode("utf-8", "replace"))
    return text.replace("\r", "").splitlines()


def test_help_uses_the_terminal_width_and_80_columns_when_piped():
    piped = _help_lines("200", None)
    assert piped and max(len(line) for line in piped) <= 80, max(piped, key=len)
    wide = _help_lines(None, 150)
    assert max(len(line) for line in wide) > 100  # the terminal's own width, not 80
    assert max(len(line) for line in wide) <= 150


def test_prepare_help_lists_the_choices_and_marks_out_required():
    text = " ".join(_help_lines("200", None))
    for name in ("catalog", "ae110k", "oamine", "matching", "implicitave", "sft|grpo|pairwise", "stop|skip"):
        assert name in text, name
    assert "required" in text


def test_prepare_trace_compact_and_a_wrong_style(catalog, tmp_path):
    out = tmp_path / "sft"
    result = _run("data", "prepare", "--task", "sft", "--catalog", str(catalog), "--out", str(out), "--trace", "compact",
                  "--no-images")
    assert result.exit_code == 0, result.output
    trace = load_from_disk(str(out))[0]["completion"][0]["content"]
    assert trace.startswith("<think>\nStated in the title: ") or trace.startswith("<think>\nThe title states none")
    bad = _run("data", "prepare", "--task", "sft", "--catalog", str(catalog), "--out", str(tmp_path / "x"), "--trace", "short")
    assert bad.exit_code != 0 and "--trace 'short'" in bad.output
