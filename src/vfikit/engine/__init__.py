"""Engines: the evaluation and training loops, checkpoints and distributed set-up."""
