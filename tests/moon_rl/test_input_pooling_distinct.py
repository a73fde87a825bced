"""GRPO's pooling "input" runs one forward per distinct text (a prompt's G rollouts share it): the states and the
gradients must be those of running every row, duplicates included."""

from __future__ import annotations

import torch


def test_distinct_rows_give_the_same_states_and_gradients(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from moon_rl.head import text

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir("qwen2")), dtype=torch.float32)
    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 7, 0], [9, 10, 0, 0], [5, 6, 7, 0], [9, 10, 0, 0]])
    mask = (ids != 0).long()
    batch = {"input_ids": ids, "attention_mask": mask}
    calls = []
    real = text.backbone_hidden

    def counted(m, b):
        calls.append(b["input_ids"].size(0))
        return real(m, b)

    weight = next(p for p in model.parameters() if p.dim() == 2)
    grads = {}
    for name, fn in (("every row", real), ("distinct", text.backbone_hidden_distinct)):
        model.zero_grad()
        text.backbone_hidden = counted
        try:
            hidden = fn(model, batch)
        finally:
            text.backbone_hidden = real
        (hidden * torch.linspace(-1, 1, hidden.numel()).view_as(hidden)).sum().backward()  # each row's copy weighted differently
        grads[name] = (hidden.detach(), weight.grad.clone())
    assert calls == [2]  # the distinct path ran two rows, not five
    torch.testing.assert_close(grads["distinct"][0], grads["every row"][0], atol=1e-5, rtol=1e-4)
    # The weight gradient sums the copies' contributions in another order (once through the shared row instead of
    # per copy): float32 rounding, measured up to 4e-5 on entries of ~0.1 on one CPU. A dropped or double-counted
    # copy would be off by a whole contribution, orders of magnitude above this tolerance.
    torch.testing.assert_close(grads["distinct"][1], grads["every row"][1], atol=2e-4, rtol=1e-3)
    assert grads["distinct"][1].abs().sum() > 0
