"""The reasoning embedding (poolings `reasoning` / `reasoning_token`, moon_rl/head/reasoning.py): its layout, SFT on
gold traces (next-token term + InfoNCE on the vector read after the reasoning and on the no-reasoning vector), GRPO
whose reward reads the vector after each rollout, and the serving path giving the vector training read."""

from __future__ import annotations

import pytest
import torch

from moon_rl.errors import MoonError
from tests.moon_rl.grpo_support import fast_config, grpo_dataset, moon_trainer


def tokenizer_of(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


# ---- layout ---------------------------------------------------------------------------------------------


def test_layout_puts_the_plain_text_first_then_cue_reasoning_and_end(tiny_model_dir):
    from moon_rl.head.reasoning import REASONING_CUE, reasoning_layout
    from moon_rl.head.text import tokenize_texts

    tok = tokenizer_of(tiny_model_dir("qwen2"))
    texts, reasonings = ["red cotton shirt", "a much longer title of a blue wool jumper"], ["brand: acme", "model: x100; type: jumper"]
    layout = reasoning_layout(tok, texts, reasonings, max_tokens=32)
    plain = tokenize_texts(tok, texts)
    cue = tok(REASONING_CUE, add_special_tokens=False)["input_ids"]
    for i in range(2):
        n_text = int(plain["attention_mask"][i].sum())
        ids = layout["input_ids"][i][layout["attention_mask"][i].bool()].tolist()
        assert ids[:n_text] == plain["input_ids"][i][:n_text].tolist()  # the text span is pooling "input"'s tokens
        assert ids[n_text : n_text + len(cue)] == cue and ids[-1] == tok.eos_token_id
        assert layout["text"][i].sum() == n_text and layout["text"][i, :n_text].all()
        body = tok(" " + reasonings[i], add_special_tokens=False)["input_ids"]
        assert layout["targets"][i].sum() == len(body) + 1  # the reasoning's tokens and the end token
        assert not (layout["targets"][i] & layout["text"][i]).any()
        assert (layout["reasoning"][i] | layout["text"][i]).sum() == len(ids)
    capped = reasoning_layout(tok, texts, reasonings, max_tokens=2)
    assert capped["targets"].sum(dim=1).tolist() == [3, 3]


def test_next_token_nll_is_the_cross_entropy_of_the_target_tokens():
    from moon_rl.head.reasoning import next_token_nll

    torch.manual_seed(0)
    head = torch.nn.Linear(6, 11, bias=False)
    hidden, ids = torch.randn(2, 5, 6), torch.randint(0, 11, (2, 5))
    targets = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    logits = head(hidden)[:, :-1]  # position t-1 predicts token t
    full = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), ids[:, 1:].reshape(-1), reduction="none").reshape(2, 4)
    expected = full[targets[:, 1:]].mean()
    torch.testing.assert_close(next_token_nll(hidden, ids, targets, head), expected)


def test_pooling_table_reads_text_and_reasoning_or_the_end_token():
    from moon_rl.head.pooling import pool

    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    masks = {"text": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool),
             "reasoning": torch.tensor([[0, 0, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)}
    masks["image"] = torch.zeros_like(masks["text"])
    assert pool("reasoning", hidden, masks)[0].flatten().tolist() == [1.0, 5.5]  # mean over text + reasoning
    assert pool("reasoning_token", hidden, masks)[0].flatten().tolist() == [2.0, 7.0]  # the last reasoning token
    assert pool("input", hidden, masks)[0].flatten().tolist() == [0.5, 4.0]  # the no-reasoning vector: the text span


def test_config_checks_the_reasoning_fields(tmp_path):
    from moon_rl.trainers.sft.config import MoonSFTConfig

    with pytest.raises(MoonError, match="max_reasoning_tokens"):
        MoonSFTConfig(output_dir=str(tmp_path), pooling="reasoning", max_reasoning_tokens=0, report_to="none")
    with pytest.raises(MoonError, match="input_contrastive_weight"):
        MoonSFTConfig(output_dir=str(tmp_path), pooling="reasoning", input_contrastive_weight=-1.0, report_to="none")
    # next_token_weight=0 on a reasoning pooling: InfoNCE only, on the vector read after the gold trace
    assert MoonSFTConfig(output_dir=str(tmp_path), pooling="reasoning_token", next_token_weight=0.0, report_to="none").next_token_weight == 0.0


# ---- SFT: trains both vectors, and serves the vector it trained ---------------------------------------------


def sft_config(out, **overrides):
    from moon_rl.trainers.sft.config import MoonSFTConfig

    fields = dict(output_dir=str(out), per_device_train_batch_size=8, max_steps=3, learning_rate=5e-3, logging_steps=1,
                  report_to="none", bf16=False, activation_checkpointing=False, save_strategy="no", seed=0, disable_tqdm=True,
                  pooling="reasoning_token", contrastive_weight=1.0, next_token_weight=1.0, max_reasoning_tokens=16)
    return MoonSFTConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, sft_text_dataset_dir, tmp_path_factory):
    """3 steps of reasoning SFT; TRL's own loss must never run (the layout's forward is the only one)."""
    from datasets import load_from_disk
    from trl import SFTTrainer

    from moon_rl.models.loading import ModelArgs
    from moon_rl.trainers.sft.run import build_trainer

    out = tmp_path_factory.mktemp("reasoning-sft") / "run"
    trainer = build_trainer(sft_config(out), ModelArgs(model=str(tiny_model_dir("qwen2"))), load_from_disk(str(sft_text_dataset_dir)))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    def refuse(*args, **kwargs):
        raise AssertionError("TRL's forward over the chat prompt + trace ran for a reasoning pooling")

    with pytest.MonkeyPatch.context() as monkey:
        monkey.setattr(SFTTrainer, "compute_loss", refuse)
        trainer.train()
    trainer.save_model(str(out))
    return trainer, out, before


def test_reasoning_sft_logs_both_terms_and_the_reasoning_nll_and_trains_the_adapter(sft_run):
    trainer, _, before = sft_run
    logs = [h for h in trainer.state.log_history if "contrastive_loss" in h]
    assert len(logs) == 3
    for key in ("nll", "contrastive_loss", "input/contrastive_loss", "input/retrieval_accuracy"):
        assert all(torch.isfinite(torch.tensor(h[key])) for h in logs), key
    after = dict(trainer.model.named_parameters())
    changed = {n for n, p in after.items() if not torch.equal(p.detach(), before[n])}
    assert any("lora_" in n for n in changed)
    frozen = [n for n, p in after.items() if not p.requires_grad]
    assert frozen and not any(n in changed for n in frozen)


def test_the_vector_training_reads_after_a_reasoning_is_the_one_encode_serves(sft_run):
    """The trainer's own batch (collator layout, backbone forward, head) against `moon_rl.load(run).encode` given the
    same reasoning, and the same for the no-reasoning vector."""
    import moon_rl
    from data_prep.identifier_trace import identifier_trace
    from moon_rl.head.ids import LAYOUT_PREFIX, TEXT_COLUMNS
    from moon_rl.head.reasoning import layout_masks
    from moon_rl.head.text import backbone_hidden, record_texts
    from moon_rl.inference import Query

    trainer, out, _ = sft_run
    rows = [trainer.train_dataset[i] for i in range(5)]
    batch = trainer.data_collator(rows)
    layout = {k[len(LAYOUT_PREFIX):]: v for k, v in batch.items() if k.startswith(LAYOUT_PREFIX)}
    model = trainer.model.eval()
    with torch.no_grad():
        hidden = backbone_hidden(model, layout)
        trained, _ = trainer.moon_extras().embed(hidden, layout_masks(layout))
        trained_plain, _ = trainer.moon_extras().embed(hidden, layout_masks(layout), mode="input")

    served = moon_rl.load(out)
    assert served.reads_reasoning
    queries = [Query(text=t) for t in record_texts(rows)]
    traces = [identifier_trace(r[TEXT_COLUMNS[0]], r[TEXT_COLUMNS[1]]) for r in rows]
    emb, used = served.encode_with_completions(queries, reasonings=traces, progress=False)
    assert used == traces
    torch.testing.assert_close(emb, trained.float(), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(served.encode(queries, reasoning=False, progress=False), trained_plain.float(), atol=2e-5, rtol=1e-4)
    # Its own greedy reasoning, then the vector read after it: the same as handing that reasoning back (a cache).
    own, written = served.encode_with_completions(queries, progress=False)
    again, _ = served.encode_with_completions(queries, reasonings=written, progress=False)
    torch.testing.assert_close(own, again)


def test_reasonings_are_refused_for_a_head_that_does_not_read_them(tiny_model_dir):
    import moon_rl
    from moon_rl.inference import Query

    base = moon_rl.load(tiny_model_dir("qwen2"))
    with pytest.raises(MoonError, match="reasoning or reasoning_token"):
        base.encode([Query(text="a shirt")], reasonings=["brand: acme"], progress=False)


# ---- GRPO: the reward reads the vector after each rollout ---------------------------------------------------


def test_grpo_rewards_the_vector_read_after_each_rollout(tiny_model_dir, tmp_path):
    from moon_rl.head.reasoning import REASONING_CUE
    from reward_fns.registry import resolve_rewards

    seen: list[dict] = []

    def probe(completions, prompts=None, embeddings=None, candidates=None, **kwargs):
        seen.append({"n": len(completions), "prompts": list(prompts), "emb": embeddings.clone(), "candidates": candidates})
        return [0.0] * len(completions)

    probe.needs_embeddings = True
    funcs, _ = resolve_rewards(["retrieval(mode=rank_margin)", "identifier_format"])
    config = fast_config(tmp_path, max_steps=2, num_generations=4, per_device_train_batch_size=16, pooling="reasoning_token",
                         contrastive_weight=1.0, max_reasoning_tokens=12)
    trainer = moon_trainer(tiny_model_dir("qwen2"), config, rewards=[*funcs, probe], dataset=grpo_dataset("text"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()

    assert len(seen) == 2
    first = seen[0]
    assert all(p.endswith(REASONING_CUE) for p in first["prompts"])  # rollouts continue text + cue, not the chat prompt
    cand_emb, cand_groups, cand_rows = first["candidates"]
    torch.testing.assert_close(cand_emb, first["emb"])  # one process: every rollout of the generation batch
    assert len(cand_groups) == len(cand_rows) == first["n"]
    logged = [h for h in trainer.state.log_history if "rewards/retrieval/mean" in h]
    assert len(logged) == 2 and all("frac_reward_zero_std" in h for h in logged)  # TRL's share of groups with zero spread
    assert any(h["rewards/retrieval/mean"] is not None and "input/contrastive_loss" in h for h in logged)
    changed = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p.detach(), before[n])]
    assert any("lora_" in n for n in changed)


def test_grpo_refuses_a_pooling_that_differs_from_the_saved_heads(tiny_model_dir, tmp_path, sft_run):
    _, out, _ = sft_run
    config = fast_config(tmp_path, pooling="input")
    with pytest.raises(MoonError, match="the saved head pools"):
        moon_trainer(tiny_model_dir("qwen2"), config, dataset=grpo_dataset("text"), extras_dir=str(out))


def test_export_serves_the_no_reasoning_vector_and_the_card_says_which(sft_run, tmp_path):
    """`export-adapter --sentence-transformers` of a reasoning head: `st/` serves its no-reasoning vector (checked
    against `encode(..., reasoning=False)` by the export itself), and the model card names both vectors."""
    from sentence_transformers import SentenceTransformer
    from typer.testing import CliRunner

    import moon_rl
    from moon_rl.cli import app

    _, out, _ = sft_run
    export = tmp_path / "export"
    result = CliRunner().invoke(app, ["export-adapter", str(out), "--out", str(export), "--sentence-transformers", "--verify-records", "2"])
    assert result.exit_code == 0, result.output
    card = (export / "README.md").read_text(encoding="utf-8")
    assert "Pooling `reasoning_token`" in card and "reasoning=False" in card
    texts = ["red cotton shirt", "blue wool jumper size m"]
    st = torch.as_tensor(SentenceTransformer(str(export / "st"), device="cpu").encode(texts))
    served = moon_rl.load(out).encode([{"title": t} for t in texts], reasoning=False, progress=False)
    torch.testing.assert_close(st, served, atol=1e-4, rtol=1e-4)


def test_reasoning_cache_generates_only_what_it_lacks(sft_run, tmp_path, monkeypatch):
    import moon_rl
    from moon_rl.inference import MoonModel, Query
    from moon_rl.reasoning_cache import ReasoningCache, model_fingerprint

    _, out, _ = sft_run
    model = moon_rl.load(out)
    queries = [Query(text=t) for t in ("red cotton shirt", "blue wool jumper", "green silk scarf")]
    fresh, written = model.encode_with_completions(queries[:2], reasoning_cache=tmp_path, progress=False)
    cache = ReasoningCache(tmp_path, model_fingerprint(out))
    assert [cache.get(q.text) for q in queries[:2]] == written and cache.get(queries[2].text) is None

    calls: list[int] = []
    original = MoonModel._reason
    monkeypatch.setattr(MoonModel, "_reason", lambda self, texts, n: calls.append(len(texts)) or original(self, texts, n))
    again, reread = model.encode_with_completions(queries, reasoning_cache=tmp_path, progress=False)
    assert calls == [1]  # only the record the cache lacked was generated
    assert reread[:2] == written
    torch.testing.assert_close(again[:2], fresh)
    (tmp_path / f"{model_fingerprint(out)}.jsonl").open("a").write('{"key": "cut sho')  # a crash mid-line
    assert ReasoningCache(tmp_path, model_fingerprint(out)).get(queries[2].text) == reread[2]
