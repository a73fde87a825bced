"""The sentence-transformers layout of a moon-rl embedder: what `SentenceTransformer(path)` loads with no custom code.

    moon-rl export-adapter runs/sft --out exports/sft --sentence-transformers   # -> exports/sft/st/

Modules, in `modules.json` order: Transformer (the merged LoRA model's body, plain text in, `max_seq_length` =
moon-rl's `INPUT_MAX_LENGTH`), Pooling (mean over the attended tokens), Dense (the embedding head's projection,
identity activation) and Normalize. That is exactly `moon_rl.load(run).encode(texts, reasoning=False)` for a head
trained with pooling "input" (`moon_rl.head.text`: the text, right-padded, through the backbone, mean, head,
L2), and the no-reasoning vector of a head trained with pooling "reasoning" / "reasoning_token" (the same mean over
the text span: `moon_rl.head.reasoning`); `write_sentence_transformers` checks it on sample texts before the export
counts as done. Other poolings
read the chat prompt or the generated reasoning, which a sentence-transformers pipeline does not run: they are
refused with the reason, as is residual enhancement (moon-rl's hooks, absent from a plain model).
"""

from __future__ import annotations

from pathlib import Path

from moon_rl.errors import MoonError
from moon_rl.head.pooling import REASONING_POOLINGS

ST_DIR = "st"


def check_exportable(extras, is_vision_language: bool) -> None:
    if is_vision_language:
        raise MoonError("--sentence-transformers: a vision-language model's embedding reads images; the layout exported is text only")
    if extras is None:
        return  # an adapter without a head: plain mean pooling, no Dense
    if extras.args.pooling not in ("input", *REASONING_POOLINGS):  # a reasoning head's no-reasoning vector is "input"'s
        raise MoonError(
            f"--sentence-transformers: this run pools {extras.args.pooling!r} (over the chat prompt or the generated reasoning), "
            "which a sentence-transformers pipeline does not run; train with pooling=input for an embedder it can serve"
        )
    if extras.residual is not None:
        raise MoonError("--sentence-transformers: residual enhancement runs as moon-rl hooks, which a plain model does not have")


def write_sentence_transformers(merged_dir: Path, out_dir: Path, extras, hidden_size: int) -> None:
    """Build the module stack on the merged model folder and save it to `out_dir`."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    from moon_rl.head.text import INPUT_MAX_LENGTH

    body = Transformer(
        str(merged_dir),
        max_seq_length=INPUT_MAX_LENGTH,
        processor_kwargs={"padding_side": "right"},  # positions from 0 on every row, as moon-rl encodes
        # Plain text in: a chat-template model would otherwise be fed through its template.
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    modules = [body, Pooling(hidden_size, pooling_mode="mean")]
    if extras is not None and extras.head.proj is not None:  # a head without projection is Pooling + Normalize alone
        dense = Dense(hidden_size, extras.head.proj.out_features, bias=True, activation_function=torch.nn.Identity())
        with torch.no_grad():
            dense.linear.weight.copy_(extras.head.proj.weight.float())
            dense.linear.bias.copy_(extras.head.proj.bias.float())
        modules.append(dense)
    modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(out_dir), safe_serialization=True)


def check_same_vectors(st_dir: Path, reference, texts: list[str], tolerance: float = 1e-4) -> float:
    """Load `st_dir` the way a user would and compare with moon-rl's vectors: 1 - min cosine, must be <= tolerance."""
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(st_dir), device="cpu")
    vectors = torch.as_tensor(st.encode(texts, convert_to_numpy=True, batch_size=len(texts)))
    gap = float(1 - torch.nn.functional.cosine_similarity(vectors.float(), reference.float(), dim=-1).min())
    if gap > tolerance:
        raise MoonError(f"sentence-transformers export check failed: its vectors differ from moon-rl's by 1 - cos = {gap:.3g} (> {tolerance})")
    return gap
