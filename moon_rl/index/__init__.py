"""Embed a catalog into vectors on disk (`moon-rl embed`) and search them (`moon-rl search`)."""
