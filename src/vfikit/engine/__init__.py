"""Engines: evaluation (and, from the training work, the training loop and checkpoints)."""
