"""A process killed with SIGKILL while writing a checkpoint or an export leaves the previous good one
intact and loadable, and `--resume` never picks a half-written checkpoint.

The kills are real SIGKILLs, at chosen points: the work runs in a forked child process (`killed_child`)
whose save functions are patched to SIGKILL it there. Forking skips a second import of torch/transformers
(the test processes run with OMP_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false, so no thread pool is
copied in a bad state). No timing is involved, so the tests are deterministic.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from reliability_support import tiny_sft_args

from moon_rl.trainers.checkpoints import MARKER, is_complete, latest_complete_checkpoint, replace_dir


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def killed_child(work, timeout: float = 300.0) -> None:
    """Run `work()` in a forked child that must end by SIGKILL (from inside `work`)."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            work()
        finally:
            os._exit(3)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the child process hung")
        time.sleep(0.05)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"expected a SIGKILL, got status {status}"


def patch_to_die(point: str) -> None:
    """In the child: make the save die at `point`."""
    if point == "optimizer-file":  # half of optimizer.pt of the second checkpoint is on disk
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            if str(f).endswith(os.path.join("checkpoint-2", "optimizer.pt")):
                with open(f, "r+b") as fh:
                    fh.truncate(os.path.getsize(f) // 2)
                die()

        torch.save = save
    elif point == "before-marker":  # everything written, not yet marked complete
        import moon_rl.trainers.common as tc

        real_mark = tc.mark_complete

        def mark(folder, step):
            if step == 2:
                die()
            real_mark(folder, step)

        tc.mark_complete = mark
    elif point == "final-save":  # checkpoints done, the final adapter half-written into the run folder
        import moon_rl.trainers.common as tc

        real_save = tc.save_extras

        def save_extras(model, folder, *args, **kwargs):
            if "checkpoint-" not in str(folder):
                die()
            return real_save(model, folder, *args, **kwargs)

        tc.save_extras = save_extras
    elif point == "export-card":  # the new export is half-written in its temporary folder
        import moon_rl.export.adapter as export

        def card(*args, **kwargs):
            die()

        export.model_card = card


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- checkpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["optimizer-file", "before-marker"])
def test_sigkill_while_checkpointing_keeps_previous_checkpoint(point, cli, tiny_model_dir, sft_text_dataset_dir, tmp_path):
    """save_steps=1, save_total_limit=1: checkpoint-1 is the only good one when checkpoint-2 is being saved.
    'before-marker' kills after HF has written (and, unpatched, rotated) everything: HF deletes older
    checkpoints before moon-rl's marker exists, so the trainer rotates them itself, after the marker."""
    out = tmp_path / "run"
    args = tiny_sft_args(tiny_model_dir("qwen2"), sft_text_dataset_dir, out, "--max-steps", "3", "--set", "save_total_limit=1")
    def work():
        patch_to_die(point)
        cli(args)

    killed_child(work)

    good, partial = out / "checkpoint-1", out / "checkpoint-2"
    assert is_complete(good) and (good / "moon_extras.safetensors").is_file() and (good / "optimizer.pt").is_file()
    assert partial.is_dir() and not is_complete(partial)
    assert latest_complete_checkpoint(out) == good
    if point == "optimizer-file":  # a genuinely broken file: loading it would fail
        with pytest.raises(Exception):
            torch.load(partial / "optimizer.pt", weights_only=True)

    resumed = cli([*args, "--resume", "latest"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming from {good}" in resumed.output
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3]
    # The half-written folder was rewritten by the resumed run, then rotated out with checkpoint-1.
    assert [p.name for p in sorted(out.glob("checkpoint-*"))] == ["checkpoint-3"] and is_complete(out / "checkpoint-3")


def test_sigkill_during_the_final_save_is_never_loaded_as_a_model(cli, tiny_model_dir, sft_text_dataset_dir, tmp_path):
    """Killed while the final artifacts go into the run folder (after a first, complete run left its own
    there): loaders use the newest complete checkpoint instead, training from it is refused with the way
    out, and `--resume latest` finishes the save."""
    import moon_rl
    from moon_rl.trainers.checkpoints import final_save_unfinished
    from moon_rl.errors import MoonError
    from moon_rl.models.loading import resolve_source

    out = tmp_path / "run"
    args = tiny_sft_args(tiny_model_dir("qwen2"), sft_text_dataset_dir, out)
    assert cli([*args, "--max-steps", "1"]).exit_code == 0  # a finished run: its final files are now "stale"
    assert not final_save_unfinished(out)

    def work():
        patch_to_die("final-save")
        cli([*args, "--max-steps", "2", "--resume", "latest"])

    killed_child(work)

    assert final_save_unfinished(out) and is_complete(out / "checkpoint-2")
    assert (out / "adapter_model.safetensors").is_file()  # the stale final files are still there ...
    model = moon_rl.load(out)  # ... and are not what gets loaded
    assert Path(model.source) == out / "checkpoint-2"
    with pytest.raises(MoonError, match=r"final save of that run did not finish.*checkpoint-2"):
        resolve_source(str(out))

    resumed = cli([*args, "--max-steps", "2", "--resume", "latest"])
    assert resumed.exit_code == 0, resumed.output
    assert not final_save_unfinished(out)
    assert Path(moon_rl.load(out).source) == out


def test_rewritten_checkpoint_loses_its_stale_marker(cli, monkeypatch, tiny_model_dir, sft_text_dataset_dir, tmp_path):
    """Resuming from an older checkpoint rewrites the newer ones; one that dies half-rewritten must not
    keep the marker of the run that wrote it first (it would then mix two runs' files)."""
    import moon_rl.trainers.common as tc

    out = tmp_path / "run"
    args = tiny_sft_args(tiny_model_dir("qwen2"), sft_text_dataset_dir, out, "--max-steps", "2")
    assert cli(args).exit_code == 0
    assert is_complete(out / "checkpoint-1") and is_complete(out / "checkpoint-2")

    def crash(*a, **k):  # the process dies while checkpoint-2 is rewritten (an exception stands in for SIGKILL)
        raise OSError("disk full")

    monkeypatch.setattr(tc, "save_extras", crash)
    failed = cli([*args, "--resume", str(out / "checkpoint-1")])
    assert failed.exit_code != 0 and isinstance(failed.exception, OSError)
    assert not (out / "checkpoint-2" / MARKER).exists()
    assert latest_complete_checkpoint(out) == out / "checkpoint-1"


# ---- exports ---------------------------------------------------------------------------------------


def test_sigkill_while_exporting_keeps_previous_export(tiny_model_dir, tmp_path):
    from moon_rl.eval.random_run import write_random_run
    from moon_rl.export.adapter import export_adapter
    from moon_rl.inference import Query, load

    run = write_random_run(tiny_model_dir("qwen2"), tmp_path / "run", kind="sft")
    out = tmp_path / "exports" / "v1"
    export_adapter(run, out, n_verify=1, verify_max_new_tokens=2, progress=False)
    before = digest(out)
    reference = load(out).encode([Query(text="navy cotton shirt")], reasoning=False, progress=False)

    def work():  # --force re-export of the same folder, killed while the new one is written
        patch_to_die("export-card")
        export_adapter(run, out, force=True, n_verify=1, verify_max_new_tokens=2, progress=False)

    killed_child(work)

    assert digest(out) == before, "the previous export must be untouched"
    again = load(out).encode([Query(text="navy cotton shirt")], reasoning=False, progress=False)
    torch.testing.assert_close(again, reference)
    leftovers = [p.name for p in out.parent.iterdir() if p.name != "v1"]
    assert all(name.startswith(".v1.tmp-") for name in leftovers) and leftovers  # the dead export's scratch folder


def test_replace_dir_swaps_in_one_step(tmp_path, monkeypatch):
    """Replacing an existing folder (export --force): once the swap is done the target holds the new folder,
    even if the process dies before the old one is deleted; before the swap it holds the old one."""
    import moon_rl.trainers.checkpoints as checkpoints

    target, new = tmp_path / "out", tmp_path / ".out.tmp"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")

    def die(path, *a, **k):
        raise SystemExit("killed before the old folder was deleted")

    monkeypatch.setattr(checkpoints.shutil, "rmtree", die)
    with pytest.raises(SystemExit):
        replace_dir(new, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    old_left = [p for p in tmp_path.iterdir() if p != target]
    assert len(old_left) == 1 and (old_left[0] / "old.txt").read_text() == "old"
