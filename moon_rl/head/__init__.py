"""The embedding head, the centre of the recipe: what turns a policy's hidden states into a product vector,
and the one InfoNCE term both trainers add to TRL's loss. Training and `moon_rl.load().encode` call the same
code, so the vector a model was trained with is the vector it serves.

- `pooling.py`: the pooling table (modes by name) and the token masks each mode reads.
- `projection.py`: the linear + L2-normalise projection.
- `fusion.py`, `residual.py`: MOON3.0's multi-head modality fusion and fine-grained residual enhancement.
- `text.py`: pooling "input", the record's own text in a short forward of its own.
- `capture.py`: hidden states from the forward TRL already runs (no second pass).
- `extras.py`: the container of all of the above that rides on the policy, saved and loaded as a unit.
- `contrastive.py`: micro-batch -> InfoNCE term (gathered across processes, optional candidate bank), its log.
- `losses.py`: the InfoNCE maths as pure functions; `ids.py`: labels as tensors; `distributed.py`: gathering.
"""
