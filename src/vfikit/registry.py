"""The model registry as one name: the catalog (``vfikit.models.catalog``) and ``create_model`` (``vfikit.hub``).

Kept for code that imports ``vfikit.registry``; inside vfikit, models register into the catalog and
builders import ``create_model`` from the hub, so that nothing below the hub depends on it.
"""

from __future__ import annotations

from vfikit.hub import create_model
from vfikit.models.catalog import (
    MODEL_MODULES,
    ModelEntry,
    WeightSpec,
    get_entry,
    list_models,
    register_model,
    split_name,
)

__all__ = ["MODEL_MODULES", "ModelEntry", "WeightSpec", "create_model", "get_entry", "list_models",
           "register_model", "split_name"]
