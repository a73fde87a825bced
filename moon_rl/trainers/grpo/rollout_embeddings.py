"""Embeddings of a generation batch's rollouts computed *without* gradient, at scoring time, for two users:

1. reward functions that ask for them (`retrieval`, or any reward with `needs_embeddings = True`): they
   receive `embeddings` (N, D), one L2-normalised row per completion, as a keyword argument;
2. the contrastive loss, as extra candidates (`moon_rl.head.contrastive.CandidateBank`) when TRL splits a
   generation batch over several micro-batches (`steps_per_generation > 1`): its shuffle can put two members of a group in different
   micro-batches, and a micro-batch's anchors are then also scored against these no-grad embeddings of
   the rest of the generation batch (a "bank"), so they still find their positives. Parameters do not
   change within an accumulation window, so the bank holds what the loss forward would compute (up to
   dropout); with `num_iterations > 1` it is one or more optimizer steps old, like a MoCo queue.

Where they come from, cheapest first:
- TRL's own no-grad forward of the policy over the generation batch (the `old_per_token_logps` pass). TRL
  runs it with vLLM importance-sampling correction (the default under `--use-vllm`) and whenever
  generation and optimisation are misaligned (`num_iterations > 1`, `steps_per_generation` not dividing
  gradient accumulation). Its backbone output is captured: no extra compute. The reference-model pass is
  never used (it is not the policy).
- Otherwise one extra no-grad forward of the policy over the generation batch, run only when a reward or
  the bank needs it. Its inputs are rebuilt from what TRL generated (`rollout_forward_inputs`) the way
  `GRPOTrainer._generate_and_score_completions` builds them (text models and Qwen-style VL models;
  tool-calling and custom `rollout_func` rollouts are not supported here).
tests/moon_rl/test_grpo_groups.py checks that both give the same embeddings as the loss forward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from moon_rl.errors import MoonError


@dataclasses.dataclass
class ScoringPass:
    """State of one `_generate_and_score_completions` call (one generation batch on this process)."""

    want_embeddings: bool
    prompts: list | None = None  # as handed to `_generate` (images already placed in the messages)
    prompt_ids: list[list[int]] | None = None
    completion_ids: list[list[int]] | None = None
    images: list | None = None
    rows: list[dict] | None = None  # the generation batch's dataset rows (one per rollout)
    layout: dict[str, torch.Tensor] | None = None  # reasoning poolings: the rollouts' layout (`moon_rl.head.reasoning`)
    embeddings: torch.Tensor | None = None  # (N, D), no grad
    source: str | None = None  # "trl_forward" (captured from TRL's pass) or "extra_forward"


def rollout_forward_inputs(trainer, scoring: ScoringPass) -> tuple[torch.Tensor, torch.Tensor, int, dict[str, Any]]:
    """(input_ids, attention_mask, logits_to_keep, forward kwargs) for the rollouts recorded in `scoring`,
    built as `GRPOTrainer._generate_and_score_completions` builds them for its log-prob passes."""
    from trl.data_utils import apply_chat_template
    from trl.trainer.utils import pad

    device = trainer.accelerator.device
    pad_id, multiple = trainer._tokenizer.pad_token_id, trainer.pad_to_multiple_of

    def padded(seqs, value, side):
        return pad(seqs, padding_value=value, padding_side=side, pad_to_multiple_of=multiple).to(device)

    prompts = [torch.tensor(ids) for ids in scoring.prompt_ids]
    completions = [torch.tensor(ids) for ids in scoring.completion_ids]
    prompt_ids = padded(prompts, pad_id, "left")
    prompt_mask = padded([torch.ones_like(t) for t in prompts], 0, "left")
    completion_ids = padded(completions, pad_id, "right")
    completion_mask = padded([torch.ones_like(t) for t in completions], 0, "right")
    if trainer.mask_truncated_completions:
        ends = [*trainer.eos_token_ids, pad_id]
        truncated = torch.tensor([ids[-1] not in ends for ids in scoring.completion_ids], device=device)
        completion_mask = completion_mask * (~truncated).unsqueeze(1).int()
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (N, P+C)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)  # (N, P+C)

    kwargs: dict[str, Any] = {}
    if scoring.images is not None:
        texts = [
            apply_chat_template({"prompt": p}, trainer.processing_class, **trainer.chat_template_kwargs)["prompt"]
            for p in scoring.prompts
        ]
        processed = trainer.processing_class(images=scoring.images, text=texts, padding=True, return_tensors="pt")
        kwargs = {k: v.to(device) for k, v in processed.items() if k not in ("input_ids", "attention_mask")}
        for key in ("token_type_ids", "mm_token_type_ids"):  # per-token fields: left-pad to P, zeros over C
            if key in kwargs:
                ids = kwargs[key]
                ids = torch.cat([ids.new_zeros(ids.size(0), prompt_ids.size(1) - ids.size(1)), ids], dim=1)
                kwargs[key] = torch.cat([ids, ids.new_zeros(completion_ids.shape)], dim=1)
        kwargs["num_images"] = [len(x) if x else 0 for x in scoring.images]
    return input_ids, attention_mask, completion_ids.size(1), kwargs


# ---- rewards that need embeddings ------------------------------------------------------------------


def needs_embeddings(fn: Callable) -> bool:
    """A reward declares it with `needs_embeddings = True`; the built-in `retrieval` is known to. Wrappers
    (`GuardedReward`) are looked through via their `.fn`."""
    while fn is not None:
        if getattr(fn, "needs_embeddings", False) or getattr(fn, "__name__", None) == "retrieval":
            return True
        fn = getattr(fn, "fn", None)
    return False


class EmbeddingReward:
    """Calls `fn` with the extra keyword `embeddings=provider()` (an (N, D) tensor of this call's rollouts).

    TRL builds reward keyword arguments from dataset columns, one value per row; an (N, D) tensor is not a
    column, hence this wrapper. It keeps `fn`'s `__name__` (TRL's metric name) and looks like `fn` otherwise.
    """

    def __init__(self, fn: Callable, provider: Callable[[], torch.Tensor], candidates: Callable[[], tuple] | None = None):
        self.fn = fn
        self.provider = provider
        self.candidates = candidates  # every process's rollouts, gathered: passed where `fn` takes `candidates`
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def _extra(self) -> dict[str, Any]:
        import inspect

        extra: dict[str, Any] = {"embeddings": self.provider()}
        inner = self.fn
        while getattr(inner, "fn", None) is not None:  # look through wrappers (GuardedReward) to the reward itself
            inner = inner.fn
        target = inner if inspect.isfunction(inner) else getattr(inner, "__call__", inner)
        if self.candidates is not None and "candidates" in inspect.signature(target).parameters:
            extra["candidates"] = self.candidates()
        return extra

    def __call__(self, *args: Any, **kwargs: Any):
        return self.fn(*args, **self._extra(), **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("fn", "provider", "candidates"):  # not set yet (unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.fn, name)


class AsyncEmbeddingReward(EmbeddingReward):
    """`EmbeddingReward` for an async reward (TRL awaits rewards whose `__call__` is a coroutine function)."""

    async def __call__(self, *args: Any, **kwargs: Any):
        return await self.fn(*args, **self._extra(), **kwargs)


def with_embeddings(fn: Callable, provider: Callable[[], torch.Tensor], candidates: Callable[[], tuple] | None = None) -> EmbeddingReward:
    import inspect

    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
    return (AsyncEmbeddingReward if is_async else EmbeddingReward)(fn, provider, candidates)


# ---- batches that mix rows with and without images --------------------------------------------------


def image_safe_chunks(n: int, batch_size: int | None, kwargs: dict[str, Any]) -> list[tuple[slice, dict[str, Any]]] | None:
    """Forward chunks for TRL's `_get_per_token_logps_and_entropies` when one of its chunks would hold no image.

    TRL hands such a chunk an empty `pixel_values`, on which Qwen-VL's vision tower fails; query rows (text
    only) next to product rows (with images) make that common. Returns None when TRL's own chunking is fine,
    else [(rows, kwargs)] per chunk, image arguments sliced per chunk and removed where a chunk has none.
    """
    from trl.trainer.utils import split_pixel_values_by_grid

    num_images, pixel_values = kwargs.get("num_images"), kwargs.get("pixel_values")
    size = batch_size or n
    starts = range(0, n, size)
    if num_images is None or pixel_values is None or all(sum(num_images[s : s + size]) > 0 for s in starts):
        return None
    if kwargs.get("image_grid_thw") is None:
        raise MoonError("batches that mix rows with and without images are supported for Qwen-style VL models (image_grid_thw) only")
    per_row = split_pixel_values_by_grid({"pixel_values": pixel_values, "image_grid_thw": kwargs["image_grid_thw"], "num_images": num_images})
    chunks = []
    for start in starts:
        rows = slice(start, min(start + size, n))
        sub = dict(kwargs)
        if sum(num_images[rows]) > 0:
            sub["pixel_values"] = torch.cat(per_row["pixel_values"][rows])
            sub["image_grid_thw"] = torch.cat(per_row["image_grid_thw"][rows])
            sub["num_images"] = num_images[rows]
        else:
            sub["pixel_values"] = sub["image_grid_thw"] = sub["num_images"] = None
        for key in ("token_type_ids", "mm_token_type_ids"):
            if sub.get(key) is not None:
                sub[key] = sub[key][rows]
        chunks.append((rows, sub))
    return chunks
