import signal

import pytest

from moon_rl.trainers.checkpoints import latest_complete_checkpoint, mark_complete, resolve_resume
from moon_rl.errors import MoonError
from moon_rl.trainers.interrupt import GracefulInterrupt


def _ckpt(run, step, complete):
    path = run / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x")
    if complete:
        mark_complete(path, step)
    return path


def test_half_written_checkpoint_is_never_picked(tmp_path):
    good = _ckpt(tmp_path, 2, complete=True)
    _ckpt(tmp_path, 10, complete=True)
    _ckpt(tmp_path, 12, complete=False)  # killed while saving
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert resolve_resume(tmp_path, True) == str(tmp_path / "checkpoint-10")
    assert resolve_resume(tmp_path, str(good)) == str(good)
    with pytest.raises(MoonError, match="incomplete"):
        resolve_resume(tmp_path, str(tmp_path / "checkpoint-12"))


def test_resume_without_checkpoint_says_so(tmp_path):
    _ckpt(tmp_path, 3, complete=False)
    with pytest.raises(MoonError, match="no complete checkpoint.*checkpoint-3"):
        resolve_resume(tmp_path, True)
    assert resolve_resume(tmp_path, None) is None


def test_interrupt_callback_requests_save_and_stop():
    from transformers import TrainerControl

    cb = GracefulInterrupt(signals=(signal.SIGUSR1,))
    control = TrainerControl()
    cb.on_train_begin(None, None, control)
    try:
        cb.on_step_end(None, None, control)
        assert not control.should_save and not control.should_training_stop
        signal.raise_signal(signal.SIGUSR1)
        cb.on_step_end(None, None, control)
        assert cb.interrupted and control.should_save and control.should_training_stop
    finally:
        cb.on_train_end(None, None, control)
    assert signal.getsignal(signal.SIGUSR1) is not cb._handler
