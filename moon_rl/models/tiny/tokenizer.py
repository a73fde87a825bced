"""Train the tiny byte-level BPE tokenizer and give it Qwen's special tokens and a chat template.

The tokenizer is built with the `tokenizers` library using exactly the normaliser (NFC), pre-tokeniser
(Qwen2's split regex + byte-level) and decoder (byte-level) that `transformers.Qwen2Tokenizer`
rebuilds when it loads a folder, so what is trained is what `AutoTokenizer.from_pretrained(dir)`
gives back, and any UTF-8 text round-trips (the 256 byte symbols are always in the vocabulary).

Departures from the real Qwen tokenizers, on purpose:
- the special tokens come FIRST (ids 0..10, `SPECIAL_TOKENS`), so their ids do not depend on the
  corpus and are the same for all four architectures (text archs carry the unused vision tokens too);
- `<think>`, `</think>`, `<answer>`, `</answer>` are added tokens that are NOT special (as in Qwen3):
  they are single ids, yet survive `decode(..., skip_special_tokens=True)`, which TRL's GRPOTrainer
  uses before calling reward functions;
- the chat template never inserts a default system prompt (short sequences for CPU training) and wraps
  assistant turns in `{% generation %}` so TRL's `assistant_only_loss` works without patching.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from moon_rl.models.tiny.vocabulary import product_corpus

# Order = token id. Real Qwen ids are 151643.. ; the tiny tokenizers put them at 0.. (see docstring).
SPECIAL_TOKENS = (
    "<|endoftext|>",  # pad (and bos in the model config)
    "<|im_start|>",
    "<|im_end|>",  # eos
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
)
REASONING_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
TOKEN_IDS = {token: i for i, token in enumerate(SPECIAL_TOKENS)}

# Qwen-style chat template. Content is a string or a list of parts: {"type": "image"} (or any part with
# an "image"/"image_url" key) renders the vision placeholder that the processor expands to N image
# tokens; {"type": "text", "text": ...} renders the text.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- render(message['content']) -}}{{- '<|im_end|>\\n' -}}{%- endgeneration -%}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}{{- render(message['content']) -}}{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def train_tokenizer(vocab_size: int, extra_corpus: Iterable[str] | None = None):
    """Train a byte-level BPE on the built-in product vocabulary (+ `extra_corpus`) and wrap it as a
    `transformers.Qwen2Tokenizer` with `SPECIAL_TOKENS` at ids 0.. and `CHAT_TEMPLATE`.

    Deterministic: same corpus and `vocab_size` give the same vocabulary and merges.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    backend = Tokenizer(models.BPE())
    # Same pipeline as Qwen2Tokenizer.__init__, which rebuilds the backend from vocab + merges on load.
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(product_corpus())
    if extra_corpus is not None:
        texts.extend(t for t in extra_corpus if t and t.strip())
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))

    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    special = [t for t in SPECIAL_TOKENS if t not in REASONING_TOKENS]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[t for t in special if t not in (EOS_TOKEN, PAD_TOKEN)],
        model_max_length=2048,
    )
    # Already in the vocabulary (trained as special tokens), so this only marks them as unsplittable
    # added tokens that are kept by skip_special_tokens=True.
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TOKENS])
    tokenizer.chat_template = CHAT_TEMPLATE
    for token, expected in TOKEN_IDS.items():
        actual = tokenizer.convert_tokens_to_ids(token)
        if actual != expected:  # a transformers change would silently break the model config ids
            raise RuntimeError(f"tiny tokenizer: {token!r} got id {actual}, expected {expected}")
    return tokenizer
