"""What a job on two images hands the page: the in-between frames as lossless PNG (one file, or a zip of
several) and a slowed, looping animation of them between the two images. No web code."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

from vfikit.errors import VfikitError

LOOP_SECONDS = 1.0  # the animation goes from the first image to the second in this time, then back
LOOP_HOLD_MS = 500  # and rests this long on each image
LOOP_WIDTH = 640  # the animation is at most this wide (the downloads keep the full size)


def pair_downloads(frames: Path, images: Sequence[Path], folder: Path, name: str, made: int) -> tuple[Path, Path]:
    """Package the frames ``interpolate_video`` wrote for two images into ``folder``.

    ``frames``: its output folder (the first image, the ``made`` in-between frames, maybe the second);
    ``name``: the download's name without suffix. Returns (download, animation): ``NAME.png`` for one
    in-between frame or ``NAME.zip`` (``NAME-1.png``, ...) for several, and an animated PNG.
    """
    written = sorted(frames.glob("*.png"))
    between = written[1 : 1 + made]
    if not between:
        raise VfikitError("no frame falls between the two images: they are the same, or the target's frame rate "
                          "is below theirs (raise it, or the 'frames per second' of the two images)")
    animation = write_loop(folder / "animation.png", [images[0], *between, images[-1]])
    if len(between) == 1:
        download = folder / f"{name}.png"
        shutil.move(between[0], download)
    else:
        download = folder / f"{name}.zip"
        with zipfile.ZipFile(download, "w", zipfile.ZIP_STORED) as archive:  # PNG is compressed already
            for number, path in enumerate(between, start=1):
                archive.write(path, f"{name}-{number}.png")
    shutil.rmtree(frames, ignore_errors=True)
    return download, animation


def write_loop(path: Path, frames: Sequence[Path]) -> Path:
    """An animated PNG that plays ``frames`` forth and back for ever, slowed so the motion can be seen."""
    from PIL import Image

    from vfikit.image_files import read_image, to_uint8

    images = []
    for frame in frames:
        image = Image.fromarray(to_uint8(read_image(frame, drop_alpha=True)[0]))
        if image.width > LOOP_WIDTH:
            image = image.resize((LOOP_WIDTH, max(1, round(image.height * LOOP_WIDTH / image.width))), Image.LANCZOS)
        images.append(image)
    step = max(20, round(1000 * LOOP_SECONDS / (len(images) - 1)))
    sequence = images + images[-2:0:-1]  # forth, then back without repeating the ends
    durations = [LOOP_HOLD_MS if i in (0, len(images) - 1) else step for i in range(len(sequence))]
    sequence[0].save(path, format="PNG", save_all=True, append_images=sequence[1:], duration=durations, loop=0)
    return path
