"""How frames are held between decoding, the model and encoding.

The video pipeline keeps frames as integer arrays ((H, W, 3) ``uint8`` for 8-bit sources,
``uint16`` for anything deeper: 10-, 12- and 16-bit video and 16-bit PNGs are scaled to the full
16-bit range by FFmpeg / the image reader), so queues hold 1/4 of the float size and frames that
are only copied reach the encoder bit for bit. The public generator API works on float tensors.
Both are described by a :class:`FrameKind`, so the renderer needs to know neither.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from vfikit.errors import VfikitError
from vfikit.runtime import check_frame
from vfikit.timeline.scenes import Signature, signature


class FrameKind(Protocol):
    """Converts the frames one pipeline holds to and from model tensors."""

    def to_model(self, frames: list[Any]) -> torch.Tensor:
        """A list of frames -> (B, 3, H, W) float32 in [0, 1] on the CPU."""

    def from_model(self, batch: torch.Tensor) -> list[Any]:
        """(B, 3, H, W) float in [0, 1] (any device) -> a list of frames."""

    def signature(self, frame: Any) -> Signature:
        """Scene-detection summary of one frame (see :mod:`vfikit.timeline.scenes`)."""

    def size(self, frame: Any) -> tuple[int, int]:
        """(height, width)."""


class ArrayFrames:
    """Frames as (H, W, 3) uint8 or uint16 numpy arrays; ``bits`` is 8 or 16."""

    def __init__(self, bits: int) -> None:
        if bits not in (8, 16):
            raise VfikitError(f"frames must be 8 or 16 bits per channel, got {bits}")
        self.bits = bits
        self.dtype = np.uint8 if bits == 8 else np.uint16
        self.max_value = float((1 << bits) - 1)

    def to_model(self, frames: list[np.ndarray]) -> torch.Tensor:
        stacked = np.stack(frames)  # (B, H, W, 3) integer
        # uint16 tensors have few kernels in torch; uint8 converts on the torch side
        tensor = torch.from_numpy(stacked.astype(np.float32) if self.bits == 16 else stacked).to(torch.float32)
        return tensor.permute(0, 3, 1, 2).div_(self.max_value).contiguous()

    def from_model(self, batch: torch.Tensor) -> list[np.ndarray]:
        # round half up, as vfikit.image_files.to_uint8; quantising on the model's device moves 1/4 of the data
        q = batch.detach().float().mul(self.max_value).add_(0.5).clamp_(0.0, self.max_value).floor_()
        q = q.to(torch.int32).permute(0, 2, 3, 1).cpu().numpy().astype(self.dtype)
        return list(q)

    def signature(self, frame: np.ndarray) -> Signature:
        return signature(frame, self.max_value)

    def size(self, frame: np.ndarray) -> tuple[int, int]:
        return int(frame.shape[0]), int(frame.shape[1])

    def promote(self, frame: np.ndarray) -> np.ndarray:
        """Bring an 8- or 16-bit array to this kind's depth (8 -> 16 multiplies by 257, exact)."""
        if frame.dtype == self.dtype:
            return frame
        if frame.dtype == np.uint8 and self.bits == 16:
            return frame.astype(np.uint16) * np.uint16(257)
        raise VfikitError(f"cannot convert a {frame.dtype} frame to {self.bits} bits without losing precision")


class TensorFrames:
    """Frames as (3, H, W) float tensors in [0, 1] (the library's image contract)."""

    def to_model(self, frames: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([f.detach().to("cpu", torch.float32) for f in frames])

    def from_model(self, batch: torch.Tensor) -> list[torch.Tensor]:
        return list(batch.detach().float().cpu().unbind(0))

    def signature(self, frame: torch.Tensor) -> Signature:
        return signature(frame.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy())

    def size(self, frame: torch.Tensor) -> tuple[int, int]:
        return int(frame.shape[-2]), int(frame.shape[-1])


def check_tensor_frame(frame: Any, index: int) -> torch.Tensor:
    """Validate one user-supplied frame for the generator API: a float (3, H, W) tensor."""
    return check_frame(frame, f"frame {index}", dims=(3,))
