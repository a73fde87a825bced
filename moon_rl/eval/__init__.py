"""`moon-rl eval`: retrieval, classification and attribute metrics of moon-rl models on a product catalog.

- `metrics`: pure metric functions (ranks with pessimistic ties, Recall@K, MRR, accuracy per
  category level, attribute micro-F1 via the attribute rewards' parsing).
- `search`: exact top-k by dot product, faiss when installed (`moon-rl[faiss]`), else chunked torch matmuls.
- `tasks`: the three tasks for one loaded model (`moon_rl.load`), sharing one encoding of the products.
- `lexical`: the text baselines as pure functions (TF-IDF words / char 2-4-grams, BM25, sentence-transformers
  embeddings) of the record's plain text; `text_baselines`: those as rows of the retrieval table.
- `report`: metrics.json, report.md (models side by side) and PNG plots.
- `run`: `EvalConfig` and `run_eval` (the model under test and its baselines, one after the other).
- `random_run`: a moon-rl-shaped output with random weights, for smoke tests and benchmarks.
"""
