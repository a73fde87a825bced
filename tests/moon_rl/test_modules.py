"""MOON3.0's two modules on their own: modality fusion pooling (zero init = equal-weight mean of the
per-modality means, masks decide which tokens count, absent modalities drop out, gradients reach every
part) and fine-grained residual enhancement (zero gates = unchanged model, hooks come off cleanly, it
works through generation, bad layer choices fail)."""

from __future__ import annotations

import pytest
import torch

from moon_rl.head.fusion import MODALITIES, ModalityFusion
from moon_rl.head.residual import FineGrainedResidual, find_decoder_layers

H = 8


def _masks(lengths: dict[str, tuple[int, int]], total: int = 9) -> dict[str, torch.Tensor]:
    """One row; each modality covers positions [start, end)."""
    out = {}
    for name in MODALITIES:
        mask = torch.zeros(1, total, dtype=torch.bool)
        if name in lengths:
            start, end = lengths[name]
            mask[0, start:end] = True
        out[name] = mask
    return out


def test_fusion_at_init_is_the_mean_of_modality_means():
    torch.manual_seed(0)
    hidden = torch.randn(1, 9, H)
    masks = _masks({"image": (0, 2), "text": (2, 5), "reasoning": (5, 9)})
    pooled, gate = ModalityFusion(H, num_heads=2, seed=0)(hidden, masks)
    per_modality = [hidden[0, masks[m][0]].mean(0) for m in MODALITIES]
    torch.testing.assert_close(pooled[0], torch.stack(per_modality).mean(0))
    torch.testing.assert_close(gate, torch.full((1, 6), 1 / 6))


def test_fusion_ignores_masked_out_tokens_and_absent_modalities():
    torch.manual_seed(1)
    fusion = ModalityFusion(H, num_heads=2, seed=0)
    with torch.no_grad():  # a trained-looking module: non-uniform attention and gate
        fusion.queries.normal_()
        fusion.gate.weight.normal_()
    hidden = torch.randn(1, 9, H)
    masks = _masks({"text": (0, 4), "reasoning": (4, 7)})  # no image; positions 7, 8 are padding
    pooled, gate = fusion(hidden, masks)
    changed = hidden.clone()
    changed[0, 7:] = 100.0
    torch.testing.assert_close(fusion(changed, masks)[0], pooled)
    weights = fusion.modality_weights(gate)
    assert weights["image"] == 0.0 and weights["text"] + weights["reasoning"] == pytest.approx(1.0)
    assert torch.isfinite(pooled).all()


def test_fusion_gradients_reach_every_part():
    torch.manual_seed(2)
    fusion = ModalityFusion(H, num_heads=2, seed=0)
    hidden = torch.randn(2, 9, H, requires_grad=True)
    masks = {k: v.expand(2, -1) for k, v in _masks({"image": (0, 2), "text": (2, 5), "reasoning": (5, 9)}).items()}
    target = torch.randn(2, H)

    def step():
        fusion.zero_grad()
        pooled, _ = fusion(hidden, masks)
        (pooled * target).sum().backward()
        return {name: float(p.grad.abs().sum()) for name, p in fusion.named_parameters()}

    at_init = step()
    # Zero queries = uniform attention, so the keys get no signal until the queries have moved; the rest does.
    assert at_init["key.weight"] == 0 and all(v > 0 for k, v in at_init.items() if k != "key.weight"), at_init
    with torch.no_grad():
        fusion.queries.add_(0.1 * torch.randn_like(fusion.queries))
    assert all(v > 0 for v in step().values())
    assert hidden.grad.abs().sum() > 0


@pytest.fixture
def text_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_dir("qwen2")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer(["navy cotton shirt", "blue mug with handle"], return_tensors="pt", padding=True)


def test_residual_zero_gates_unchanged_then_detached_cleanly(text_model):
    model, batch = text_model
    with torch.no_grad():
        before = model(**batch).logits
        residual = FineGrainedResidual(model.config.hidden_size, model.config.num_hidden_layers)
        residual.attach(model)
        torch.testing.assert_close(model(**batch).logits, before, rtol=0, atol=0)
        residual.gates.fill_(0.5)
        assert not torch.allclose(model(**batch).logits, before)
        residual.detach()
        torch.testing.assert_close(model(**batch).logits, before, rtol=0, atol=0)
    layers = find_decoder_layers(model)
    assert all(not layer._forward_hooks for layer in layers)


def test_residual_applies_during_generation_and_trains(text_model):
    model, batch = text_model
    residual = FineGrainedResidual(model.config.hidden_size, model.config.num_hidden_layers)
    residual.attach(model)
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=model.config.pad_token_id)
    with torch.no_grad():
        plain = model.generate(**batch, **kwargs)
        residual.gates.fill_(3.0)
        enhanced = model.generate(**batch, **kwargs)
        residual.gates.zero_()
    assert plain.shape == enhanced.shape and not torch.equal(plain, enhanced)  # decode steps go through the hooks too
    model.train()
    model(**batch).logits.float().pow(2).mean().backward()
    assert residual.gates.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in residual.proj.parameters())  # zero gate: no signal yet


@pytest.mark.parametrize("source, targets", [(2, None), (1, [1]), (0, [5])])
def test_residual_rejects_impossible_layers(source, targets):
    with pytest.raises(ValueError, match="residual_"):
        FineGrainedResidual(H, num_layers=2, source_layer=source, target_layers=targets)
