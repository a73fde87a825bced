"""Exporting a trained run: `adapter.py` (the LoRA adapter with its head, or a merged model: `export-adapter`)
and `st.py` (the sentence-transformers folder: `export-adapter --sentence-transformers`)."""
