"""Group membership travels with the rollouts: TRL shuffles a generation batch and splits it over
micro-batches, and an anchor whose positive landed in the other micro-batch still finds it (through the
no-grad bank of the whole generation batch). The bank and the embeddings handed to rewards are the same
embeddings the loss forward computes, whether captured from TRL's own pass or from the extra forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from grpo_support import fast_config, grpo_dataset, moon_trainer

import moon_rl.trainers.grpo.trainer as grpo_trainer_module
from moon_rl.head.contrastive import CandidateBank, contrastive_term
from moon_rl.head.losses import group_info_nce


class _Identity(torch.nn.Module):
    """Stands in for MoonExtras: `embed` = normalised mean of the hidden states over the reasoning mask."""

    def embed(self, hidden, masks):
        m = masks["reasoning"].float().unsqueeze(-1)
        return F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1), {}


def test_split_groups_find_positives_in_the_bank():
    torch.manual_seed(0)
    # One generation batch: rows 0..3 x 2 rollouts; groups {0, 1} and {2, 3}. TRL's shuffle put rows 0 and 2 in
    # micro-batch A and rows 1 and 3 in micro-batch B, so A holds no positive pair on its own.
    rows = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    groups = torch.tensor([7, 7, 7, 7, 9, 9, 9, 9])
    uids = torch.arange(8)
    hidden = torch.randn(8, 5, 16)
    masks = {"reasoning": torch.ones(8, 5, dtype=torch.bool)}
    emb_all = _Identity().embed(hidden, masks)[0]
    bank = CandidateBank(emb_all, groups, rows, uids)
    a = torch.tensor([0, 1, 4, 5])

    hidden_a = hidden[a].clone().requires_grad_(True)
    masks_a = {"reasoning": masks["reasoning"][a]}
    lone = contrastive_term(_Identity(), hidden_a, masks_a, groups[a], rows[a], 0.1, uids=uids[a], bank=None)
    alone, n_alone = lone.stats, lone.n_candidates
    banked = contrastive_term(_Identity(), hidden_a, masks_a, groups[a], rows[a], 0.1, uids=uids[a], bank=bank)
    loss, stats, n_cand = banked.loss, banked.stats, banked.n_candidates
    assert alone.n_anchors == 0 and n_alone == 4
    assert stats.n_anchors == 4 and n_cand == 8  # the 4 local rollouts + the 4 of micro-batch B, no duplicates
    # Same value as InfoNCE over the whole generation batch for these anchors.
    want, _ = group_info_nce(emb_all[a], groups[a], rows[a], 0.1, candidates=emb_all, candidate_group_ids=groups, candidate_row_ids=rows)
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert hidden_a.grad.abs().sum() > 0


def _interleaving_shuffle(num_generations: int):
    """Stands in for TRL's random `shuffle_sequence_dict` with its worst case for groups: rollouts of even rows
    first, then odd rows, so a group packed as consecutive rows is cut across the two micro-batches."""

    def shuffle(seq_dict):
        n = len(next(v for v in seq_dict.values() if v is not None))
        perm = sorted(range(n), key=lambda i: ((i // num_generations) % 2, i))

        def permute(v):
            if v is None or (isinstance(v, torch.Tensor) and v.ndim == 0):
                return v
            return v[torch.tensor(perm)] if isinstance(v, torch.Tensor) else [v[i] for i in perm]

        return {k: permute(v) for k, v in seq_dict.items()}

    return shuffle


def _spy(records: list):
    original = contrastive_term

    def spy(extras, hidden, masks, group_ids, row_ids, temperature, uids=None, bank=None):
        out = original(extras, hidden, masks, group_ids, row_ids, temperature, uids=uids, bank=bank)
        records.append(dict(emb=extras.embed(hidden, masks)[0].detach(), groups=group_ids, rows=row_ids, uids=uids, bank=bank, anchors=out.stats.n_anchors))
        return out

    return spy


@pytest.mark.parametrize(
    "arch, overrides, source",
    [
        ("qwen2_5_vl", {}, "extra_forward"),  # inputs rebuilt from the rollouts (images, token types)
        ("qwen2", {"num_iterations": 2}, "trl_forward"),  # TRL runs its own no-grad pass: captured, not repeated
    ],
)
def test_bank_matches_loss_embeddings_and_split_groups_keep_positives(tiny_model_dir, tmp_path, monkeypatch, arch, overrides, source):
    import trl.trainer.grpo_trainer as trl_grpo

    records: list[dict] = []
    monkeypatch.setattr(grpo_trainer_module, "contrastive_term", _spy(records))
    monkeypatch.setattr(trl_grpo, "shuffle_sequence_dict", _interleaving_shuffle(num_generations=2))
    # 8 rows x 2 rollouts per generation batch, split over 2 micro-batches of 8 rollouts.
    config = fast_config(tmp_path, gradient_accumulation_steps=2, per_device_train_batch_size=8, max_steps=2, **overrides)
    trainer = moon_trainer(tiny_model_dir(arch), config, dataset=grpo_dataset("vl" if arch == "qwen2_5_vl" else "text"))
    trainer.train()

    reused = [h["contrastive/rollout_embeddings_reused"] for h in trainer.state.log_history if "contrastive/rollout_embeddings_reused" in h]
    assert reused and all(r == float(source == "trl_forward") for r in reused)
    assert len(records) == 4 and all(r["bank"] is not None for r in records)

    # Before the first optimizer step the parameters are those of the scoring pass: same embeddings per rollout.
    for rec in records[:2]:
        bank = rec["bank"]
        order = [int((bank.uids == u).nonzero()) for u in rec["uids"]]
        torch.testing.assert_close(bank.embeddings[order], rec["emb"], rtol=1e-4, atol=1e-5)

    split_seen = False
    for rec in records:
        bank = rec["bank"]
        same_group = rec["groups"][:, None] == bank.group_ids[None, :]
        other_row = rec["rows"][:, None] != bank.row_ids[None, :]
        has_positive = (same_group & other_row).any(dim=1)
        assert rec["anchors"] == int(has_positive.sum())  # every anchor with a positive anywhere in the generation batch
        local = (rec["groups"][:, None] == rec["groups"][None, :]) & (rec["rows"][:, None] != rec["rows"][None, :])
        split_seen |= bool((has_positive & ~local.any(dim=1)).any())
    assert split_seen, "no group was split across micro-batches: the test did not exercise the bank"


def test_rewards_receive_the_rollout_embeddings(tiny_model_dir, tmp_path):
    from reward_fns.registry import resolve_rewards

    seen: list[tuple] = []

    def probe(completions, embeddings=None, group_id=None, **kwargs):
        seen.append((len(completions), tuple(embeddings.shape), list(group_id), embeddings.norm(dim=-1)))
        return [0.0] * len(completions)

    probe.needs_embeddings = True
    funcs, _ = resolve_rewards(["format", "retrieval"])
    config = fast_config(tmp_path, max_steps=1, embedding_dim=32)
    trainer = moon_trainer(tiny_model_dir("qwen2"), config, rewards=[*funcs, probe], dataset=grpo_dataset("text"))
    trainer.train()

    assert len(seen) == 1
    n, shape, group_ids, norms = seen[0]
    assert shape == (n, 32) and len(group_ids) == n == config.per_device_train_batch_size
    torch.testing.assert_close(norms, torch.ones(n))  # L2-normalised rows, one per completion
    logged = [h for h in trainer.state.log_history if "rewards/retrieval/mean" in h]
    assert logged and logged[0]["rewards/retrieval/mean"] is not None and 0.0 < logged[0]["rewards/retrieval/mean"] <= 1.0


def test_hard_negatives_fill_generation_batches_from_one_category(tiny_model_dir, tmp_path):
    from moon_rl.trainers.sampling import group_batches

    dataset = grpo_dataset("text")
    config = fast_config(tmp_path, per_device_train_batch_size=8, num_generations=2, hard_negatives_by="category")
    trainer = moon_trainer(tiny_model_dir("qwen2"), config, dataset=dataset)
    order = list(trainer._get_train_sampler())
    # 4 prompts x 2 rollouts per generation batch: each prompt repeated num_generations times, chunks planned
    # from one category where the catalog allows.
    prompts = order[:: config.num_generations]
    chunks = [prompts[i : i + 4] for i in range(0, len(prompts), 4)]
    categories, groups = list(dataset["category"]), list(dataset["group_id"])
    assert chunks == group_batches(groups, 4, seed=0, drop_last=True, clusters=categories)
    pure = sum(len({categories[i] for i in c}) == 1 for c in chunks) / len(chunks)
    assert pure >= 0.7, pure

    bad = fast_config(tmp_path / "bad", hard_negatives_by="colour")
    with pytest.raises(Exception, match="hard_negatives_by='colour'.*category"):
        moon_trainer(tiny_model_dir("qwen2"), bad, dataset=dataset)
