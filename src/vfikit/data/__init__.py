"""Datasets: benchmark loaders, training data, synthetic samples and video readers."""

from vfikit.data.triplet import Triplet

__all__ = ["Triplet"]
