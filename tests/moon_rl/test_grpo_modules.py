"""MOON3.0's modules inside GRPO training: switching them on leaves the policy unchanged at step 0, and after
training they are saved with the adapter and come back (with the head and the residual hooks) when a
moon-rl output is the `--model` of the next run. Gradients and trainable counts: test_grpo_capture.py."""

from __future__ import annotations

import torch
from grpo_support import fast_config, grpo_dataset, load_model, moon_trainer

from moon_rl.head.extras import EXTRAS_CONFIG, EXTRAS_WEIGHTS, load_extras


def _probe_inputs(processor):
    from PIL import Image

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "navy cotton shirt, long sleeves"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(images=[Image.new("RGB", (32, 32), (20, 40, 120))], text=[text], return_tensors="pt")


def _logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


def test_modules_on_change_nothing_at_step_zero(tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("qwen2_5_vl")
    base, processor = load_model(model_dir)
    inputs = _probe_inputs(processor)
    want = _logits(base, inputs)
    config = fast_config(tmp_path, pooling="fusion", residual_enhancement=True, residual_target_layers=[1])
    trainer = moon_trainer(model_dir, config, dataset=grpo_dataset("vl"))
    assert trainer.moon_extras().residual is not None  # hooks on the LoRA-wrapped policy, gates at zero
    torch.testing.assert_close(_logits(trainer.model, inputs), want, rtol=0, atol=0)


def test_modules_saved_with_the_adapter_and_loaded_by_the_next_run(tiny_model_dir, tmp_path):
    from moon_rl.trainers.grpo.run import build_trainer
    from moon_rl.models.loading import ModelArgs

    model_dir = tiny_model_dir("qwen2_5_vl")
    config = fast_config(tmp_path / "first", max_steps=1, pooling="fusion", residual_enhancement=True, learning_rate=5e-2)
    trainer = moon_trainer(model_dir, config, dataset=grpo_dataset("vl"))
    trainer.train()
    out = tmp_path / "first-out"
    trainer.save_model(str(out))
    trained = {k: v.detach().clone() for k, v in trainer.moon_extras().state_dict().items()}
    assert float(trained["residual.gates"].abs().sum()) > 0  # trained away from the zero init

    assert (out / EXTRAS_WEIGHTS).is_file() and (out / EXTRAS_CONFIG).is_file() and (out / "adapter_config.json").is_file()
    from safetensors.torch import load_file

    assert not any("moon_extras" in k for k in load_file(str(out / "adapter_model.safetensors")))
    saved = load_extras(out)
    assert saved.args.pooling == "fusion" and saved.residual is not None

    # The next run starts from that output: adapter, head and modules are the trained ones.
    processor = trainer.processing_class
    inputs = _probe_inputs(processor)
    want = _logits(trainer.model, inputs)
    again = build_trainer(fast_config(tmp_path / "second", max_steps=1), ModelArgs(model=str(out), dtype="float32"), grpo_dataset("vl"), reward_funcs=trainer.reward_funcs)
    loaded = again.moon_extras()
    assert loaded.args.pooling == "fusion" and loaded.residual is not None
    for name, value in trained.items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0, msg=name)
    # Same outputs: the trained adapter is active and the residual hooks are back on the decoder layers.
    torch.testing.assert_close(_logits(again.model, inputs), want, rtol=1e-5, atol=1e-5)
