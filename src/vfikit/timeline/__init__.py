"""The frames of an interpolated stream, without any file: which output times to make (``timing``),
scene cuts and duplicates (``scenes``), frame layouts (``frames``), and the renderer that asks an
interpolator for them (``render``: :func:`interpolate_frames`). The video tool and
``Interpolator.frames`` build on it.
"""
