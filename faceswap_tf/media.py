"""Reading the user's media: still images and videos, with clear errors for bad files.

Frames are always RGB uint8 `[H, W, 3]`. Images go through OpenCV, which applies the EXIF
orientation and turns greyscale, RGBA (alpha dropped), palette and CMYK files into RGB.
Videos (and animated GIFs) go through imageio; its ffmpeg plugin decodes in a separate
process, which leaves this process's core to the work on the frames.

Frames come out at a constant rate, `VideoInfo.fps`: a video's frame index i is the picture
shown at time i / fps. A variable-frame-rate video is decoded at the rate its timestamps
need (ffmpeg's "tbr", the finest step between them), each frame repeated for as long as it
is shown, so that frame counts, times and the audio agree; its average rate (what the
container calls its "fps") would stretch or squeeze it.
"""

import dataclasses
import functools
import math
import os
import re
import subprocess
from collections.abc import Iterator

import cv2
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from faceswap_tf.errors import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif", ".m4v"})

# OpenCV's decoders log their own complaints about broken files to stderr; we report those
# files ourselves, in one line.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def list_media(path: str) -> list[str]:
    """The media files at `path`: the file itself, or a folder's images and videos, sorted.

    Raises UserError for a missing path, an unsupported file type or a folder without media.
    """
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if is_image(name) or is_video(name)
        )
        if not files:
            raise UserError(f"{path}: the folder holds no images or videos")
        return files
    if not (is_image(path) or is_video(path)):
        raise UserError(
            f"{path}: unsupported file type (images: {', '.join(sorted(IMAGE_EXTENSIONS))}; "
            f"videos: {', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    return [path]


def read_image(path: str) -> np.ndarray:
    """Reads a still image as RGB uint8, or raises UserError naming the file."""
    _check_nonempty(path)
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise UserError(f"{path}: cannot decode the image (corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: float  # the rate `iter_video` yields frames at
    width: int
    height: int
    frames: int | None  # an estimate from the container's duration; None when unknown
    has_audio: bool
    average_fps: float = 0.0  # frames over duration; below `fps` for a variable frame rate

    @property
    def variable_rate(self) -> bool:
        return bool(self.average_fps) and abs(self.average_fps - self.fps) > 0.01 * self.fps


def probe_video(path: str) -> VideoInfo:
    """The video's properties, or UserError when the file is not a readable video."""
    _check_nonempty(path)
    try:
        meta = iio.immeta(path)
        first = iio.imread(path, index=0)
    except Exception as err:  # imageio raises many types for a bad container
        raise UserError(f"{path}: cannot read the video ({_short(err)})") from None
    height, width = first.shape[:2]
    if path.lower().endswith(".gif"):
        # Pillow reports a GIF's frame delay in ms; count its frames directly.
        props = iio.improps(path)
        delay_ms = float(meta.get("duration") or 100)
        return VideoInfo(1000.0 / delay_ms, width, height, int(props.n_images), False)
    average = float(meta.get("fps") or 0.0)
    fps = decode_rate(path) or average
    duration = float(meta.get("duration") or 0.0)
    frames = int(round(duration * fps)) if math.isfinite(duration * fps) and fps else None
    return VideoInfo(fps, width, height, frames, bool(meta.get("audio_codec")), average)


@functools.lru_cache(maxsize=64)
def _stream_rates(path: str, stamp: tuple) -> tuple[float, float] | None:
    """(average fps, tbr) of the first video stream, as ffmpeg reads the container."""
    del stamp  # part of the cache key only: a file rewritten in place is read again
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", path],
                          capture_output=True, text=True, errors="replace")
    for line in done.stderr.splitlines():
        if "Video:" in line:
            rates = {unit: float(value) * (1000 if k else 1)
                     for value, k, unit in re.findall(r"([\d.]+)(k?) (fps|tbr)\b", line)}
            if "tbr" in rates:
                return rates.get("fps", rates["tbr"]), rates["tbr"]
            return None
    return None


def decode_rate(path: str) -> float | None:
    """The constant rate a video is decoded at (None if ffmpeg does not say): its average rate
    when that is its rate throughout, else `variable_rate`."""
    rates = _rates(path)
    return None if rates is None else variable_rate(path) or rates[0]


def variable_rate(path: str) -> float | None:
    """For a variable-frame-rate video, the rate its timestamps need (tbr, unless that is a
    container's time base rather than a frame rate: over 210, as ffmpeg reasons too); None
    for a constant rate."""
    rates = _rates(path)
    if rates is None:
        return None
    average, tbr = rates
    if abs(average - tbr) <= 0.01 * tbr or (tbr > 210 and average < 70):
        return None
    return tbr


def _rates(path: str) -> tuple[float, float] | None:
    try:
        stat = os.stat(path)
        return _stream_rates(os.path.abspath(path), (stat.st_mtime_ns, stat.st_size))
    except (OSError, ValueError):
        return None


class DecodeError(Exception):
    """A video stopped decoding part-way; `frames_read` frames came out before."""

    def __init__(self, path: str, frames_read: int, cause: Exception):
        super().__init__(f"{path}: decoding stopped after {frames_read} frames ({_short(cause)})")
        self.frames_read = frames_read


def iter_video(path: str) -> Iterator[np.ndarray]:
    """Yields the video's frames as RGB uint8.

    Raises UserError if nothing decodes, DecodeError if decoding fails after some frames, so
    the caller can keep what it has and report the rest.
    """
    _check_nonempty(path)
    count = 0
    # At the rate probe_video reports: forced where ffmpeg might choose another.
    rate = None if path.lower().endswith(".gif") else variable_rate(path)
    try:
        for frame in iio.imiter(path, **({"fps": rate} if rate else {})):
            if frame.ndim == 2:
                frame = np.repeat(frame[..., None], 3, axis=2)
            yield np.ascontiguousarray(frame[..., :3])
            count += 1
    except Exception as err:  # imageio and ffmpeg raise many types for a bad stream
        if count == 0:
            raise UserError(f"{path}: cannot read the video ({_short(err)})") from None
        raise DecodeError(path, count, err) from None
    if count == 0:
        raise UserError(f"{path}: the video holds no frames")


def _check_nonempty(path: str) -> None:
    try:
        size = os.path.getsize(path)
    except OSError as err:
        raise UserError(f"{path}: {err.strerror.lower()}") from None
    if size == 0:
        raise UserError(f"{path}: the file is empty")


def _short(err: Exception) -> str:
    """The first line of an exception's message, trimmed, for one-line reports."""
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line[:160]
