"""The add-on container: attach/detach around saves, safetensors round trip, mismatch errors, and the
residual module's promise that switching it on changes nothing at step 0."""

import pytest
import torch
from peft import get_peft_model

from moon_rl.head.capture import HiddenStateCapture
from moon_rl.errors import MoonError
from moon_rl.head.args import EmbeddingArgs
from moon_rl.head.extras import (
    MoonExtras,
    detached_extras,
    get_extras,
    load_extras,
    load_extras_into,
    save_extras,
)
from moon_rl.head.pooling import modality_masks
from moon_rl.models.loading import ModelArgs, lora_config, load_policy
from moon_rl.trainers.common import setup_extras


@pytest.fixture
def vl_policy(tiny_model_dir):
    model, processor, extras_dir = load_policy(ModelArgs(model=str(tiny_model_dir("qwen2_5_vl"))))
    assert extras_dir is None
    return get_peft_model(model, lora_config(ModelArgs(model="x"))), processor


def _ids(model, processor):
    tok = getattr(processor, "tokenizer", processor)
    enc = tok(["red cotton shirt with long sleeves", "blue mug"], return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def test_lora_targets_skip_the_vision_tower(vl_policy):
    model, _ = vl_policy
    lora_names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_names, "LoRA found no target modules"
    assert not any("visual" in n for n in lora_names)


def test_extras_round_trip_and_detach(vl_policy, tmp_path):
    model, processor = vl_policy
    args = EmbeddingArgs(pooling="fusion", residual_enhancement=True, embedding_dim=16)
    extras = setup_extras(model, args, seed=3)
    assert get_extras(model) is extras
    assert any(n.startswith("moon_extras.") for n, p in model.named_parameters() if p.requires_grad)
    with detached_extras(model) as popped:
        assert popped is extras and get_extras(model) is None
        assert not any("moon_extras" in k for k in model.state_dict())
    assert get_extras(model) is extras

    with torch.no_grad():
        extras.head.proj.weight.add_(0.5)
    save_extras(extras, tmp_path)
    again = load_extras(tmp_path)
    assert again.args.pooling == "fusion" and again.residual is not None
    for (name, a), (_, b) in zip(extras.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a.cpu(), b), name

    ids, mask = _ids(model, processor)
    with HiddenStateCapture(model) as cap:
        model(input_ids=ids, attention_mask=mask)
    masks = modality_masks(ids, mask, mask)
    emb, info = extras.embed(cap.hidden_states(), masks)
    assert emb.shape == (2, 16)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert set(info) >= {"fusion_gate/text", "fusion_gate/reasoning", "fusion_gate/image"}


def test_mismatched_head_is_refused(vl_policy, tmp_path):
    model, _ = vl_policy
    save_extras(MoonExtras(hidden_size=999, num_layers=2, args=EmbeddingArgs()), tmp_path)
    with pytest.raises(MoonError, match="hidden_size=999"):
        load_extras_into(model, tmp_path)


def test_residual_is_identity_at_init_and_trainable(vl_policy):
    model, processor = vl_policy
    ids, mask = _ids(model, processor)
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    extras = setup_extras(model, EmbeddingArgs(residual_enhancement=True), seed=0)
    out = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(before, out.detach())
    out.float().pow(2).mean().backward()
    assert extras.residual.gates.grad is not None and extras.residual.gates.grad.abs().sum() > 0


def test_capture_ignores_no_grad_calls(vl_policy):
    model, processor = vl_policy
    ids, mask = _ids(model, processor)
    with HiddenStateCapture(model) as cap:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        assert cap.calls == 0
        model(input_ids=ids, attention_mask=mask)
    assert cap.calls == 1 and cap.hidden_states().requires_grad
