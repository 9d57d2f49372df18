"""The network part of the flow-guided models through ONNX: export, and ONNX Runtime as a backend.

A guided model (``guided_adacof_k5``, ``guided_dsepconv``) is three parts: the guide (OpenCV DIS flow and
vfikit's splatting, numpy), the network (U-Net and heads, torch) and the kernel sampling (vfikit's ops).
Only the network is a plain convolutional graph, so only it goes to ONNX.

Graph (``export_onnx``), opset 17, dynamic batch, height and width:

* input ``unet_input`` (B, C, Hn, Wn) float32, C = 26 (+1 with ``time_input``): in this order frame0 - mean,
  frame1 - mean, warp0 - mean, warp1 - mean (RGB each; mean ``vfikit.models.adacof.RGB_MEAN``; warpK =
  frameK backward-warped by the guide's flow F_tK), F_t0 / 16, F_t1 / 16 (x, y each), the two visibility
  maps, sin and cos of 2 pi (F_t0, F_t1) (4 + 4 channels), then t (one constant channel) when the model takes
  t. Hn, Wn: the frame padded (replicate) to a multiple of 32 * net_downscale, divided by net_downscale
  (average pooling). ``GuidedBase._network_input`` builds exactly this tensor.
* output ``heads`` (B, K, Hn, Wn): every head's output concatenated in ``model.heads`` order (channel counts
  ``model.head_channels(kernel_size)``); the caller upsamples by net_downscale and applies the
  parametrisation (signed taps, masks, offsets + flow, blend logit).

``OnnxNetwork`` runs such a file with ONNX Runtime (``pip install "vfikit[onnx]"``) and
``use_onnx_runtime(model)`` makes a guided model use it in place of its torch network (outputs agree with
torch to about 1e-5; tested).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from vfikit.errors import VfikitError


class _NetworkGraph(nn.Module):
    """U-Net and heads of a guided model: (B, C, Hn, Wn) -> (B, K, Hn, Wn)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.unet, self.heads = model.unet, model.heads

    def forward(self, unet_input: torch.Tensor) -> torch.Tensor:
        trunk, _ = self.unet(unet_input)
        return torch.cat([head(trunk) for head in self.heads.values()], 1)


def _check_guided(model: nn.Module) -> None:
    from vfikit.models.guided import GuidedCDFI, _GuidedBase

    if not isinstance(model, _GuidedBase):
        raise VfikitError(f"ONNX export covers the flow-guided models' network; {type(model).__name__} is not one")
    if isinstance(model, GuidedCDFI):
        raise VfikitError("guided_cdfi's feature pyramid reads the U-Net's encoder inside the model: no ONNX export")


def export_onnx(model: nn.Module, path: str | os.PathLike, *, height: int = 64, width: int = 64) -> Path:
    """Write the network of a guided ``model`` to ``path`` (see the module docstring for the graph).

    ``height``/``width``: the size of the example input used for tracing (any multiple of 32; the file
    takes any size). Returns the path.
    """
    _check_guided(model)
    graph = _NetworkGraph(model).eval().float()
    channels = graph.unet.conv1[0].in_channels
    example = torch.zeros(1, channels, height, width)
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of torch.export; it still gives this plain conv graph
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(graph, (example,), str(path), input_names=["unet_input"], output_names=["heads"],
                          dynamic_axes={"unet_input": {0: "batch", 2: "height", 3: "width"},
                                        "heads": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=17, dynamo=False)
    return path


class OnnxNetwork:
    """An exported network run by ONNX Runtime on the CPU: ``net(unet_input) -> heads`` (torch tensors)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise VfikitError('the ONNX Runtime backend needs onnxruntime: pip install "vfikit[onnx]"') from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, unet_input: torch.Tensor) -> torch.Tensor:
        array = unet_input.detach().to("cpu", torch.float32).contiguous().numpy()
        (heads,) = self.session.run(None, {"unet_input": array})
        return torch.from_numpy(heads).to(unet_input.device, unet_input.dtype)


def use_onnx_runtime(model: nn.Module, path: str | os.PathLike | None = None) -> nn.Module:
    """Make a guided ``model`` run its network with ONNX Runtime (exported to ``path``, or to a temporary
    file that is removed once loaded). Inference only: gradients do not pass through. Returns the model."""
    _check_guided(model)
    if path is None:
        with tempfile.TemporaryDirectory(prefix="vfikit-onnx-") as folder:
            file = export_onnx(model, Path(folder) / "network.onnx")
            model.onnx_network = OnnxNetwork(file)
    else:
        model.onnx_network = OnnxNetwork(path)
    return model
