"""Load any moon-rl model and turn products, queries and images into embeddings (and reasoning text).

    import moon_rl
    model = moon_rl.load("runs/grpo")                      # a run, a checkpoint-N, an export, or a base model
    emb = model.encode(products, catalog_dir="data/synth")  # (N, D) float32, L2-normalised
    texts = model.generate(products, catalog_dir="data/synth")

What `load(path)` accepts, and how it embeds:
- a moon-rl run / checkpoint / export (`adapter_config.json` + `moon_extras.*`): base model + LoRA
  adapter + embedding head (and fusion / residual modules), exactly as trained. A run folder without final
  artifacts falls back to its newest complete `checkpoint-N`.
- a full model folder with `moon_extras.*` (a `--no-lora` run, or `export-adapter --merge`): the same.
- a plain base model (no `moon_extras.*`): the zero-shot baseline. Its embedding is the mean of the last
  hidden states over every attended token (prompt and, with reasoning, the generated text), L2-normalised,
  with no head: the usual "mean pooling" baseline for decoder LMs.

The encoding path is the training path: the prompt comes from `data_prep.formats` (images first for VL
models), the model writes its attribute reasoning (greedy) when `reasoning=True`, then one forward over
prompt + reasoning is captured with `HiddenStateCapture`, the modality masks come from
`extras.modality_masks`, and `MoonExtras.embed` pools and projects. With `reasoning=False` nothing is
generated and the "reasoning" mask is the prompt's text tokens: much faster, for big corpora, but not what
the head was trained on. A head trained with pooling "input", and a text model without a head asked for no
reasoning, read the record's plain text instead (`embeds_plain_text`, `moon_rl.head.text`): one short
forward, the path training used and the sentence-transformers export serves.

Records: a `data_prep.schema.Product`, a `Query` (search text and/or bare images, no catalog fields), or a
dict (with a `category` it is read as a product, else as a query from `title`/`text` and `images`). A
product with an empty title is an image-only product. Departure from the training query rows: a `Query`
prompt has no category and no candidate attribute names (the training rows take them from the product the
query belongs to), because at search time nobody knows them.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from data_prep.schema import Product
from moon_rl.errors import MoonError
from moon_rl.records import Query, as_record, longest_first, record_prompt  # noqa: F401  (public here too)
from moon_rl.model_dir import RUN_META, check_adapter_fits, read_run_meta, resolve_model_dir  # noqa: F401  (public here too)
DEFAULT_MAX_NEW_TOKENS = 128


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MoonModel:
    """A loaded model with its add-ons; see the module docstring. Build it with `moon_rl.load(path)`."""

    def __init__(self, model, processor, extras, *, source: str, kind: str, meta: dict[str, Any] | None = None):
        from moon_rl.head.extras import image_token_id_of
        from moon_rl.models.loading import is_vision_language

        self.model, self.processor, self.extras = model.eval(), processor, extras
        self.source, self.kind, self.meta = source, kind, meta or {}
        self.is_vision_language = is_vision_language(model.config)
        self.image_token_id = image_token_id_of(model) if self.is_vision_language else None
        self.tokenizer = getattr(processor, "tokenizer", processor)
        config = self.meta.get("config") or {}
        self.max_new_tokens = int(config.get("max_completion_length") or DEFAULT_MAX_NEW_TOKENS)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embedding_dim(self) -> int:
        from moon_rl.head.extras import model_dims

        return self.extras.head.out_features if self.extras is not None else model_dims(self.model)[0]

    # ---- public API ----------------------------------------------------------------------------

    def encode(self, records: Sequence[Any], **kwargs: Any) -> torch.Tensor:
        """Records -> (N, D) float32 L2-normalised embeddings on CPU. Options as `encode_with_completions`."""
        return self.encode_with_completions(records, **kwargs)[0]

    def encode_with_completions(
        self,
        records: Sequence[Any],
        *,
        batch_size: int = 8,
        reasoning: bool = True,
        max_new_tokens: int | None = None,
        catalog_dir: str | Path | None = None,
        progress: bool = True,
        desc: str = "encode",
        reasonings: Sequence[str] | None = None,
        reasoning_cache: str | Path | None = None,
    ) -> tuple[torch.Tensor, list[str]]:
        """Embeddings and the reasoning text generated on the way ("" each when `reasoning=False`).

        A head with pooling `reasoning` / `reasoning_token` (`self.reads_reasoning`): `reasoning=True` serves the vector
        read after the model's own greedy reasoning (at most `max_reasoning_tokens`), or after `reasonings` when given
        (one string per record: a cache of an earlier call's reasoning, or a gold trace), with no generation at all;
        `reasoning=False` serves the same model's no-reasoning vector (the record's text span, pooling "input").
        `reasoning_cache` (a folder): the reasoning written for each record is kept there per model
        (`moon_rl.reasoning_cache`) and read back instead of generated again."""
        from tqdm.auto import tqdm

        from moon_rl.models.merged_lora import merged_lora

        recs = [as_record(r) for r in records]
        if reasonings is not None and (not self.reads_reasoning or len(reasonings) != len(recs)):
            raise MoonError(
                f"reasonings= gives the reasoning each vector is read after: it needs a head with pooling reasoning or "
                f"reasoning_token (this one: {self.pooling or 'no head'}) and one string per record ({len(reasonings)} for {len(recs)})"
            )
        order = longest_first(recs)
        out, texts = [], []
        plain = self.embeds_plain_text(reasoning)
        cache = None
        if reasoning_cache is not None and self.reads_reasoning and reasoning and reasonings is None:
            from moon_rl.reasoning_cache import ReasoningCache, model_fingerprint

            cache = ReasoningCache(reasoning_cache, model_fingerprint(self.source))
        # The adapter merged for the whole call (restored exactly after): no per-layer LoRA ops on every forward.
        with merged_lora(self.model), tqdm(total=len(recs), desc=desc, unit="rec", disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                batch = [recs[i] for i in indices]
                if plain:  # the input path: the record's own text, no template, nothing generated
                    out.append(self._embed_plain(batch))
                    texts += [""] * len(batch)
                    bar.update(len(batch))
                    continue
                if self.reads_reasoning:  # text + cue + reasoning (`moon_rl.head.reasoning`)
                    given = [reasonings[i] for i in indices] if reasonings is not None else None
                    emb, written = self._embed_reasoned(batch, given, max_new_tokens, cache)
                    out.append(emb)
                    texts += written
                    bar.update(len(batch))
                    continue
                inputs = self._tokenize(batch, Path(catalog_dir or "."))
                completions = self._generate_ids(inputs, max_new_tokens) if reasoning else [[] for _ in batch]
                out.append(self._embed(inputs, completions, reasoning))
                texts += self._decode(completions)
                bar.update(len(batch))
        if not out:
            return torch.empty(0, self.embedding_dim), texts
        back = torch.empty(len(order), dtype=torch.long)
        back[torch.tensor(order)] = torch.arange(len(order))  # position of record i in the sorted order
        return torch.cat(out)[back], [texts[j] for j in back.tolist()]

    def generate(
        self,
        records: Sequence[Any],
        *,
        max_new_tokens: int | None = None,
        batch_size: int = 8,
        catalog_dir: str | Path | None = None,
        progress: bool = True,
    ) -> list[str]:
        """Greedy reasoning + answer text for each record (special tokens removed; <think>/<answer> kept)."""
        from tqdm.auto import tqdm

        from moon_rl.models.merged_lora import merged_lora

        recs = [as_record(r) for r in records]
        order = longest_first(recs)
        texts: list[str] = []
        with merged_lora(self.model), tqdm(total=len(recs), desc="generate", unit="rec", disable=not progress) as bar:
            for batch in _batches([recs[i] for i in order], batch_size):
                if self.reads_reasoning:  # the reasoning its vector is read after, from text + cue
                    texts += self._reason(self._record_texts(batch), max_new_tokens)
                else:
                    texts += self._decode(self._generate_ids(self._tokenize(batch, Path(catalog_dir or ".")), max_new_tokens))
                bar.update(len(batch))
        back = [0] * len(order)
        for position, i in enumerate(order):
            back[i] = position
        return [texts[j] for j in back]

    @property
    def pooling(self) -> str | None:
        return self.extras.args.pooling if self.extras is not None else None

    @property
    def reads_reasoning(self) -> bool:
        """A head that reads its vector after the model's own reasoning (poolings reasoning / reasoning_token)."""
        from moon_rl.head.pooling import REASONING_POOLINGS

        return self.pooling in REASONING_POOLINGS

    def embeds_plain_text(self, reasoning: bool = True) -> bool:
        """Does `encode` read the record's plain text (`data_prep.formats.embedding_text`) in a forward of its own?
        Yes for a head trained with pooling='input' (reasoning cannot change it: the text comes first), for a
        reasoning head asked for no reasoning (its no-reasoning vector is that same mean over the text), and for a
        text model without a head when no reasoning is asked for (mean pooling over the text, the usual baseline)."""
        if self.extras is not None:
            return self.pooling == "input" or (self.reads_reasoning and not reasoning)
        return not reasoning and not self.is_vision_language

    # ---- internals -----------------------------------------------------------------------------

    @torch.no_grad()
    def _embed_plain(self, batch: Sequence[Product | Query]) -> torch.Tensor:
        from moon_rl.head.pooling import headless_embedding, input_masks
        from moon_rl.head.text import backbone_hidden, tokenize_texts

        texts = self._record_texts(batch)
        inputs = tokenize_texts(self.tokenizer, texts, device=self.device)
        hidden = backbone_hidden(self.model, inputs)  # (B, L, H)
        if self.extras is None:
            return headless_embedding(hidden, inputs["attention_mask"]).cpu()
        return self.extras.embed(hidden, input_masks(inputs["attention_mask"]), mode="input")[0].float().cpu()

    def _record_texts(self, batch: Sequence[Product | Query]) -> list[str]:
        from data_prep.formats import embedding_text

        texts = [embedding_text(r.title, r.attributes) if isinstance(r, Product) else embedding_text(r.text) for r in batch]
        if not all(texts):
            first = next(r for r, t in zip(batch, texts) if not t)
            raise MoonError(f"record {first.id or '(no id)'} has no text; this model embeds text only (pooling {self.pooling!r})")
        return texts

    @torch.no_grad()
    def _reason(self, texts: list[str], max_new_tokens: int | None) -> list[str]:
        """The model's greedy reasoning after each text + cue (`moon_rl.head.reasoning`), end token cut off."""
        from moon_rl.head.reasoning import reasoning_prompt_ids

        prompts, _ = reasoning_prompt_ids(self.tokenizer, texts)
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left-padded: every row continues from its own last token
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        completions = self._generate_ids(inputs, max_new_tokens or self.extras.args.max_reasoning_tokens)
        return [r.strip() for r in self._decode(completions)]

    @torch.no_grad()
    def _embed_reasoned(self, batch: Sequence[Product | Query], reasonings: list[str] | None, max_new_tokens: int | None,
                        cache=None) -> tuple[torch.Tensor, list[str]]:
        """(B, D) vectors read after each record's reasoning (given, cached, or generated now), and that reasoning."""
        from moon_rl.head.reasoning import layout_masks, reasoning_layout
        from moon_rl.head.text import backbone_hidden

        texts = self._record_texts(batch)
        if reasonings is None:
            reasonings = [cache.get(t) if cache is not None else None for t in texts]
            missing = [i for i, r in enumerate(reasonings) if r is None]
            if missing:
                written = self._reason([texts[i] for i in missing], max_new_tokens)
                for i, r in zip(missing, written):
                    reasonings[i] = r
                if cache is not None:
                    cache.put((texts[i], r) for i, r in zip(missing, written))
        layout = reasoning_layout(self.tokenizer, texts, reasonings, self.extras.args.max_reasoning_tokens, device=self.device)
        hidden = backbone_hidden(self.model, layout)  # (B, L, H)
        return self.extras.embed(hidden, layout_masks(layout))[0].float().cpu(), list(reasonings)

    def _tokenize(self, batch: Sequence[Product | Query], catalog_dir: Path) -> dict[str, torch.Tensor]:
        prompts = [record_prompt(r, catalog_dir, self.is_vision_language) for r in batch]
        texts = [self.processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in prompts]
        self.tokenizer.padding_side = "left"  # generation continues every row from its last prompt token
        if self.is_vision_language:
            images = [img for _, imgs in prompts for img in imgs]
            inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        else:
            inputs = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    @torch.no_grad()
    def _generate_ids(self, inputs: dict[str, torch.Tensor], max_new_tokens: int | None) -> list[list[int]]:
        """Greedy completion token ids per row, cut after the first end-of-sequence token (kept)."""
        config = copy.deepcopy(self.model.generation_config)
        config.do_sample, config.temperature, config.top_p, config.top_k = False, None, None, None
        config.max_new_tokens = max_new_tokens or self.max_new_tokens
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id
        out = self.model.generate(**inputs, generation_config=config)  # (B, L_prompt + T)
        new = out[:, inputs["input_ids"].size(1) :].tolist()
        eos = self._eos_ids()
        completions = []
        for row in new:
            cut = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            completions.append(row[:cut])
        return completions

    def _decode(self, completions: list[list[int]]) -> list[str]:
        return [self.tokenizer.decode(c, skip_special_tokens=True) if c else "" for c in completions]

    @torch.no_grad()
    def _embed(self, inputs: dict[str, torch.Tensor], completions: list[list[int]], reasoning: bool) -> torch.Tensor:
        """One forward over each row's prompt + completion (right-padded, like training) -> (B, D) embeddings."""
        from moon_rl.head.capture import HiddenStateCapture
        from moon_rl.head.pooling import headless_embedding, modality_masks

        batch, reasoning_mask = self._assemble(inputs, completions, reasoning)
        with HiddenStateCapture(self.model, capture_no_grad=True) as capture:
            self.model(**batch, use_cache=False, logits_to_keep=1)  # logits of the last position only: we need hidden states
        hidden = capture.hidden_states()  # (B, L, H)
        if self.extras is None:  # zero-shot baseline: mean over all attended tokens, no head
            return headless_embedding(hidden, batch["attention_mask"]).cpu()
        masks = modality_masks(batch["input_ids"], batch["attention_mask"], reasoning_mask, self.image_token_id)
        embeddings, _ = self.extras.embed(hidden, masks)
        return embeddings.float().cpu()

    def _assemble(
        self, inputs: dict[str, torch.Tensor], completions: list[list[int]], reasoning: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Strip the left padding, append each completion, right-pad: the layout TRL trains on."""
        ids, attn = inputs["input_ids"], inputs["attention_mask"].bool()
        # Other per-token tensors (Qwen-VL's mm_token_type_ids) follow the tokens; completions get zeros.
        token_keys = [k for k, v in inputs.items() if k not in ("input_ids", "attention_mask") and isinstance(v, torch.Tensor) and v.shape == ids.shape]
        rows = []
        for i, completion in enumerate(completions):
            prompt = ids[i][attn[i]]
            rows.append((prompt, torch.tensor(completion, dtype=ids.dtype, device=ids.device), {k: inputs[k][i][attn[i]] for k in token_keys}))
        width = max(len(p) + len(c) for p, c, _ in rows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        new_ids = torch.full((len(rows), width), pad_id, dtype=ids.dtype, device=ids.device)  # (B, L)
        new_attn = torch.zeros(len(rows), width, dtype=torch.long, device=ids.device)
        reasoning_mask = torch.zeros(len(rows), width, dtype=torch.bool, device=ids.device)
        extra = {k: torch.zeros(len(rows), width, dtype=inputs[k].dtype, device=ids.device) for k in token_keys}
        for i, (prompt, completion, per_token) in enumerate(rows):
            n_p, n = len(prompt), len(prompt) + len(completion)
            new_ids[i, :n] = torch.cat([prompt, completion])
            new_attn[i, :n] = 1
            for k, v in per_token.items():
                extra[k][i, :n_p] = v
            if reasoning:
                reasoning_mask[i, n_p:n] = True
            else:  # no reasoning: pool the prompt's text tokens instead
                is_image = prompt == self.image_token_id if self.image_token_id is not None else torch.zeros_like(prompt, dtype=torch.bool)
                reasoning_mask[i, :n_p] = ~is_image
        batch = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask") and k not in token_keys}
        batch.update(input_ids=new_ids, attention_mask=new_attn, **extra)
        return batch, reasoning_mask


# ---- loading -------------------------------------------------------------------------------------


def load(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    base_model: str | None = None,
    trust_remote_code: bool = False,
    dtype: str = "auto",
) -> MoonModel:
    """Load a moon-rl run, checkpoint, export or base model for `encode` / `generate` (see module docstring).

    `base_model` overrides the base recorded in an adapter (when it was trained on another machine).
    """
    from moon_rl.head.extras import has_extras, load_extras_into
    from moon_rl.models.loading import ModelArgs, load_policy

    model_dir = resolve_model_dir(path)
    meta = read_run_meta(model_dir)
    is_adapter = (model_dir / "adapter_config.json").is_file()
    args = ModelArgs(model=str(model_dir), base_model=base_model, trust_remote_code=trust_remote_code, dtype=dtype)
    try:
        with warnings.catch_warnings():
            # PEFT warns about adapter keys without a module; `check_adapter_fits` below fails with a clear message.
            warnings.filterwarnings("ignore", message="Found missing adapter keys")
            model, processor, _ = load_policy(args, trainable=False)
    except RuntimeError as err:  # PEFT's "size mismatch for ...lora_A..." when the base is not the trained one
        if not is_adapter:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MoonError(
            f"{model_dir}: the adapter does not fit its base model ({first[:200]}); pass base_model= / --base-model "
            "with the model it was trained on"
        ) from None
    if is_adapter:
        check_adapter_fits(model, model_dir)
    model.to(device)
    extras = None
    if has_extras(model_dir):
        extras = load_extras_into(model, model_dir)
        extras.eval()
        kind = "moon-rl adapter + head" if is_adapter else "full model + head"
    elif is_adapter:
        kind = "adapter without head (mean pooling)"
    else:
        kind = "base model (zero-shot: mean pooling, no head)"
    return MoonModel(model, processor, extras, source=str(model_dir), kind=kind, meta=meta)
