"""The video tool: frame-rate plans, scene detection, streaming decode/encode, resumable jobs.

Entry points: :func:`vfikit.interpolate_video` (files and folders) and
:func:`vfikit.video.render.interpolate_frames` (a generator over tensors). See docs/video.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["interpolate_frames", "interpolate_video"]


def __getattr__(name: str) -> Any:
    if name == "interpolate_video":
        from vfikit.video.api import interpolate_video

        return interpolate_video
    if name == "interpolate_frames":
        from vfikit.video.render import interpolate_frames

        return interpolate_frames
    raise AttributeError(f"module 'vfikit.video' has no attribute {name!r}")
