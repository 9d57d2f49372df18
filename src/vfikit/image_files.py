"""Reading and writing still images as float RGB tensors in [0, 1].

One place decides how unusual images are treated: grayscale is expanded to RGB, 16-bit images
keep their precision (scaled by 1/65535), and an alpha channel is refused unless the caller
allows dropping it. Writing quantises with round-half-up (as torchvision's ``save_image``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vfikit.errors import VfikitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
DEEP_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")  # the formats written with 16 bits per channel


def check_image_depth(name: str | Path, bits: int) -> None:
    """Refuse writing ``bits``-deep images (8 or 16) to a format that holds fewer bits.

    Deeper frames are never squeezed into 8 bits silently (OpenCV saturates them to white);
    the message names the formats that keep them.
    """
    suffix = Path(name).suffix.lower() or str(name).lower()
    if bits > 8 and suffix not in DEEP_IMAGE_SUFFIXES:
        raise VfikitError(
            f"the frames have {bits} bits per channel but {suffix} holds 8, so it would lose them: "
            f"write {' or '.join(DEEP_IMAGE_SUFFIXES[:2])} (e.g. --ext png for frame folders)"
        )


@dataclass(frozen=True)
class ImageInfo:
    """What was read: original mode, bit depth and whether conversion happened."""

    mode: str
    bits: int
    converted: str | None  # e.g. "grayscale expanded to RGB", None when the file was RGB


def read_image(path: str | Path, *, drop_alpha: bool = False) -> tuple[torch.Tensor, ImageInfo]:
    """Read an image as a float32 (3, H, W) RGB tensor in [0, 1].

    8-bit values are divided by 255 (torchvision ``ToTensor`` semantics), 16-bit ones by 65535.
    Raises VfikitError for unreadable files and for images with alpha unless ``drop_alpha``.
    """
    path = Path(path)
    if not path.is_file():
        raise VfikitError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise VfikitError(f"cannot read image {path}: {exc}") from None
    converted = None
    if mode in ("RGB", "RGBA") and is_16bit_color(path):
        arr = _read_16bit_color(path)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        bits = 16
        arr = arr.astype(np.float32) / 65535.0
        arr = np.repeat(arr[..., None], 3, axis=2)
        converted = "16-bit grayscale expanded to RGB"
    elif arr.dtype == np.uint16:
        bits = 16
        arr = arr.astype(np.float32) / 65535.0
    else:
        bits = 8
        if mode not in ("RGB", "RGBA", "L", "LA"):
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGBA" if "A" in mode else "RGB"))
            converted = f"{mode} converted to RGB"
        arr = arr.astype(np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
        converted = "grayscale expanded to RGB"
    if arr.shape[2] == 2:  # LA
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2)
        converted = "grayscale expanded to RGB"
    if arr.shape[2] == 4:
        if not drop_alpha:
            raise VfikitError(f"{path} has an alpha channel; interpolation works on RGB (allow dropping alpha)")
        arr = arr[..., :3]
        converted = (converted + "; " if converted else "") + "alpha channel dropped"
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return tensor, ImageInfo(mode=mode, bits=bits, converted=converted)


def is_16bit_color(path: Path) -> bool:
    """True for 16-bit-per-channel colour PNG/TIFF, which Pillow opens as 8-bit RGB (losing bits)."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        with open(path, "rb") as fh:
            head = fh.read(26)
        # signature (8) + IHDR length (4) + b"IHDR" (4) + width (4) + height (4) + bit depth (1)
        return len(head) >= 25 and head[12:16] == b"IHDR" and head[24] == 16
    if suffix in (".tif", ".tiff"):
        with Image.open(path) as img:
            bits = getattr(img, "tag_v2", {}).get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _read_16bit_color(path: Path) -> np.ndarray:
    """(H, W, 3|4) uint16 RGB(A) via OpenCV, which keeps all 16 bits."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        raise VfikitError(f"cannot read 16-bit image {path}")
    return arr[..., [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[..., ::-1]


def load_rgb(path: str | Path) -> torch.Tensor:
    """Shorthand: (3, H, W) float32 RGB in [0, 1]; refuses alpha."""
    return read_image(path)[0]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8 with round-half-up and clipping."""
    arr = image.detach().float().cpu().mul(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)
    return arr.permute(1, 2, 0).numpy()


def to_uint16(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint16 with round-half-up and clipping."""
    arr = image.detach().double().cpu().mul(65535.0).add_(0.5).clamp_(0.0, 65535.0).to(torch.int32)
    return arr.permute(1, 2, 0).numpy().astype(np.uint16)


def write_image(path: str | Path, image: torch.Tensor, *, bits: int = 8) -> None:
    """Write a (3, H, W) float RGB image; ``bits=16`` writes a 16-bit PNG (via OpenCV)."""
    path = Path(path)
    if image.dim() != 3 or image.shape[0] != 3:
        raise VfikitError(f"write_image expects a (3, H, W) tensor, got shape {tuple(image.shape)}")
    if bits == 16:
        check_image_depth(path, bits)
        import cv2

        if not cv2.imwrite(str(path), to_uint16(image)[..., ::-1]):
            raise VfikitError(f"cannot write {path}")
        return
    Image.fromarray(to_uint8(image)).save(path)
