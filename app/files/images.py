"""Images: checked at upload, and re-encoded clean before they leave Parley.

Every decode runs in a worker thread (the callers pass a CapacityLimiter that bounds how many
run at once, since a decoded image takes up to width x height x 4 bytes). Images of more than
IMAGE_MAX_PIXELS are refused from the header, before a pixel is decoded.
"""

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from PIL import ExifTags, Image

from app.files.detect import GIF, JPEG, PNG, WEBP, FileType
from app.files.errors import CorruptFile, ImageTooLarge

# Parley checks the pixel count itself (IMAGE_MAX_PIXELS, lower than Pillow's) right after
# opening (ImageTooLarge); Pillow's own warning for the same thing would only add noise.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

_PILLOW_FORMATS = {PNG: "PNG", JPEG: "JPEG", WEBP: "WEBP", GIF: "GIF"}
_BY_PILLOW_FORMAT = {pillow: file_type for file_type, pillow in _PILLOW_FORMATS.items()}

Source = Path | BinaryIO


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for a vision model: scaled, metadata stripped, re-encoded."""

    media_type: str
    data: bytes
    width: int
    height: int


# EXIF orientation -> the transposition that turns the picture upright (EXIF 2.3, tag 274).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _open(source: Source, name: str, file_type: FileType | None, max_pixels: int) -> Image.Image:
    formats = [_PILLOW_FORMATS[file_type]] if file_type else list(_PILLOW_FORMATS.values())
    what = file_type.label.removeprefix("a ") if file_type else "image"
    try:
        image = Image.open(source, formats=formats)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(name, None, max_pixels) from exc
    except Exception as exc:  # Pillow raises many kinds for undecodable input
        raise CorruptFile(name, what) from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLarge(name, (width, height), max_pixels)
    return image


def inspect_image(source: Source, *, name: str, file_type: FileType, max_pixels: int) -> ImageInfo:
    """Checks that an upload is a whole, decodable image of `file_type` of at most
    `max_pixels` (IMAGE_MAX_PIXELS); its dimensions.

    PNG is verified chunk by chunk (every CRC, up to IEND) without decoding pixels; a JPEG is
    decoded at 1/8 scale (every byte of it is still read); GIF and WebP decode their first
    frame. Truncated or damaged files raise CorruptFile, bombs ImageTooLarge.
    """
    image = _open(source, name, file_type, max_pixels)
    what = file_type.label.removeprefix("a ")
    try:
        width, height = image.size
        if file_type == PNG:
            image.verify()
        else:
            if file_type == JPEG:
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except ImageTooLarge:
        raise
    except Exception as exc:
        raise CorruptFile(name, what) from exc
    finally:
        image.close()
    return ImageInfo(width=width, height=height)


def prepare_image(source: Source, *, name: str, max_side: int, max_pixels: int) -> PreparedImage:
    """Decodes, scales the longest side down to `max_side`, applies the EXIF orientation,
    drops every piece of metadata (EXIF with GPS, XMP, ICC profiles, comments) and re-encodes:
    JPEG stays JPEG, WebP stays WebP, PNG and GIF (first frame) become PNG.

    Decoding is reduced as far as the format allows: a JPEG is decoded by libjpeg straight
    to the smallest scale (1/2, 1/4, 1/8) still at least `max_side`; other formats are
    decoded whole (at most `max_pixels`) and scaled before anything else makes a copy."""
    image = _open(source, name, None, max_pixels)
    try:
        source_type = _BY_PILLOW_FORMAT[str(image.format)]
        if source_type == JPEG:
            image.draft("RGB", (max_side, max_side))
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation)
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        scaled = image
        if scaled.mode in ("1", "P", "PA") and max(scaled.size) > 2 * max_side:
            # Palette images only resize by nearest neighbour: bring a large one to twice the
            # target that way (cheap, and small), convert it, then filter it down properly.
            factor = 2 * max_side / max(scaled.size)
            scaled = scaled.resize(
                (max(1, round(scaled.width * factor)), max(1, round(scaled.height * factor))),
                Image.Resampling.NEAREST,
            )
        if source_type == JPEG:
            scaled = scaled.convert("RGB")
        elif scaled.mode not in ("RGB", "RGBA", "L", "LA"):
            scaled = scaled.convert("RGBA" if has_alpha else "RGB")
        # reducing_gap: first a fast integer reduce() to within 2x, then the LANCZOS filter.
        scaled.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        upright = scaled.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else scaled
        upright.info = {}  # nothing from the original's metadata is written back
        output_format = {JPEG: "JPEG", WEBP: "WEBP"}.get(source_type, "PNG")
        buffer = io.BytesIO()
        if output_format == "JPEG":
            upright.save(buffer, "JPEG", quality=90)
        elif output_format == "WEBP":
            upright.save(buffer, "WEBP", quality=90)
        else:
            upright.save(buffer, "PNG", optimize=False)
    except (ImageTooLarge, CorruptFile):
        raise
    except Exception as exc:
        raise CorruptFile(name, "image") from exc
    finally:
        image.close()
    media_type = {"JPEG": "image/jpeg", "WEBP": "image/webp"}.get(output_format, "image/png")
    return PreparedImage(
        media_type=media_type, data=buffer.getvalue(), width=upright.width, height=upright.height
    )


async def prepare_image_in_thread(
    source: Source,
    *,
    name: str,
    max_side: int,
    max_pixels: int,
    limiter: anyio.CapacityLimiter,
) -> PreparedImage:
    """prepare_image() in a worker thread, at most `limiter`'s count at once."""
    return await anyio.to_thread.run_sync(
        lambda: prepare_image(source, name=name, max_side=max_side, max_pixels=max_pixels),
        limiter=limiter,
    )
