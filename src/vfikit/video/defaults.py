"""Which model the video tool uses when none is named, and how the interpolator is built.

The default is a model whose trained weights ship inside the package (``vfikit/weights/``):

* on CPU, ``guided_adacof_k5_fast`` (AdaCoF kernels placed by DIS flow, its network at half
  resolution), then ``guided_adacof_k5``, then ``compressed_adacof_k5_d1``, then ``cdfi``;
* on GPU, ``cdfi`` (the most accurate kernel-based model of the papers), then the two guided models,
  then the compressed AdaCoF.

``guided_adacof_k5_fast`` serves every frame size: its shipped weights (run E2, docs/weights.md) are
ahead of ``guided_adacof_k5.vfikit`` on every part of the validation set and on Middlebury, and faster.
The earlier rule that handed frames of 720 px and more to the fast model is gone with it.

Only files present in ``vfikit/weights/`` count; ``--model`` always overrides the choice. A model named
without a tag (``--model guided_adacof_k5``) whose weights ship runs with them, as the README's names
suggest; ``--allow-untrained`` keeps the untrained network. A vfikit file given with ``--weights`` and no
``--model`` names its own architecture; any other weights file needs ``--model`` (it is refused, never
ignored).

When no weights ship (a development checkout) there is no sensible default: an untrained
network produces garbage, so :func:`default_model` raises and asks for ``--model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vfikit.errors import VfikitError
from vfikit.runtime import packaged_weights

# architectures (packaged file: ``<arch>.vfikit``) in order of preference per device type
_PREFERENCE = {
    "cpu": ["guided_adacof_k5_fast", "guided_adacof_k5", "compressed_adacof_k5_d1", "cdfi"],
    "gpu": ["cdfi", "guided_adacof_k5_fast", "guided_adacof_k5", "compressed_adacof_k5_d1"],
}
BACKENDS = ("torch", "onnx")
DEFAULT_BISECT_DEPTH = 3


def default_model(device: str = "cpu") -> str:
    """The model name (``arch.vfikit``) used when ``--model`` is not given (see module docstring)."""
    kind = "cpu" if str(device).startswith("cpu") else "gpu"
    for arch in _PREFERENCE[kind]:
        if packaged_weights(f"{arch}.vfikit") is not None:
            return f"{arch}.vfikit"
    raise VfikitError(
        "no trained weights ship with this installation, so there is no default model; "
        "choose one with --model NAME (and --weights FILE for an official checkpoint); see `vfikit models`"
    )


def build_interpolator(
    model: str | None,
    weights: str | Path | None = None,
    *,
    device: str = "cpu",
    precision: str = "auto",
    tile: int | str | None = "auto",
    max_depth: int = DEFAULT_BISECT_DEPTH,
    allow_untrained: bool = False,
    backend: str = "torch",
) -> Any:
    """Create the model (registry name or default) and wrap it in :class:`vfikit.inference.Interpolator`.

    ``max_depth``: models without native t reach other times by recursive bisection, to the
    nearest k / 2**max_depth (the video tool's default 3 keeps the timing error within 1/16 of
    a frame interval at no more than 3 model calls per frame).
    ``allow_untrained``: accept a learned model without trained weights (refused otherwise: garbage output).
    ``backend``: ``"torch"``, or ``"onnx"`` to run a flow-guided model's network with ONNX Runtime (CPU, fp32).
    ``precision``: ``"auto"`` (bf16 for models that declare it safe, on CPUs where it is measured faster; else
    fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU).
    """
    from vfikit.hub import create_model
    from vfikit.models.catalog import split_name

    if model is None and weights is not None:  # (a missing file: create_model and architecture_of say so)
        name = weights_model(weights)
    elif model is None:  # the default's weights are a packaged file: load it by path
        arch = split_name(default_model(device))[0]
        name, weights = arch, packaged_weights(f"{arch}.vfikit")
    else:
        name = model
        if weights is None and not allow_untrained and split_name(model)[1] is None:
            weights = packaged_weights(f"{model}.vfikit")  # a bare name runs the weights that ship for it
    if backend not in BACKENDS:
        raise VfikitError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "onnx" and (not str(device).startswith("cpu") or precision not in ("fp32", "auto")):
        raise VfikitError("--backend onnx runs on the CPU in fp32 (give --device cpu, no --fp16/--bf16)")
    net = create_model(name, weights=weights)
    if backend == "onnx":  # (an untrained network is refused by the Interpolator below)
        from vfikit.models.onnx_network import use_onnx_runtime

        use_onnx_runtime(net)
        precision = "fp32"  # ONNX Runtime runs the network in float32
    from vfikit.inference import Interpolator

    return Interpolator(net, device=device, precision=precision, tile=tile, max_depth=max_depth,
                        allow_untrained=allow_untrained)


def weights_model(weights: str | Path) -> str:
    """The model a weights file given without ``--model`` is for: vfikit files record it; others are refused."""
    from vfikit.hub import architecture_of

    arch = architecture_of(weights)
    if arch is None:
        raise VfikitError(
            f"cannot tell which model {weights} is for (only vfikit files record their architecture): "
            f"name it with --model, e.g. --model cdfi --weights {weights}; `vfikit models` lists the names"
        )
    return arch


def model_name(model: Any) -> str:
    """A model's registry name when it records one (``vfikit_arch``), else its class name."""
    return str(getattr(model, "vfikit_arch", None) or type(model).__name__)


def describe_interpolator(interpolator: Any) -> str:
    """A short name for messages: the model's registry name when known, and the model for large frames."""
    model = getattr(interpolator, "model", None)
    text = model_name(model if model is not None else interpolator)
    large = getattr(interpolator, "large_frames", None)
    if large is not None:
        text += f" ({model_name(large[1])} for frames of {large[0]} px and more)"
    return text
