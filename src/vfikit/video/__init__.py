"""The video tool: decoding, encoding, the threads between them and resumable jobs over files
(which frames to make at which times is :mod:`vfikit.timeline`'s work).

Entry points: :func:`vfikit.interpolate_video` (files and folders) and
:func:`vfikit.timeline.render.interpolate_frames` (a generator over tensors). See docs/video.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["interpolate_frames", "interpolate_video"]


def __getattr__(name: str) -> Any:
    if name == "interpolate_video":
        from vfikit.video.api import interpolate_video

        return interpolate_video
    if name == "interpolate_frames":
        from vfikit.timeline.render import interpolate_frames

        return interpolate_frames
    raise AttributeError(f"module 'vfikit.video' has no attribute {name!r}")
