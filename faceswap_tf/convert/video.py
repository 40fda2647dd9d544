"""Writing the converter's output: videos through ffmpeg, images through Pillow.

Every writer writes to a hidden temporary file beside the output and renames it at the end,
so the output path never holds a partial file, whatever stops the run. Every output carries
metadata saying that it is synthetic media and which model made it.

A video is encoded by the ffmpeg that imageio-ffmpeg ships (codec, CRF and preset as given);
a second ffmpeg pass, copying the new video stream, adds the source's audio (copied, or
re-encoded to AAC when the container cannot hold it or a slice was cut) and the metadata.
"""

import dataclasses
import os
import subprocess

import imageio_ffmpeg
import numpy as np
from PIL import Image, PngImagePlugin

from faceswap_tf import files
from faceswap_tf.errors import UserError, brief

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".gif")
WRITABLE_IMAGES = (".png", ".jpg", ".jpeg", ".webp")  # formats that carry the synthetic-media note
GENERATOR = "faceswap-tf"


@dataclasses.dataclass(frozen=True)
class Provenance:
    """What made an output: recorded in its metadata."""

    model: str  # where the swapper ran: a SavedModel path or a serving URL
    name: str
    step: int
    source: str
    target: str

    def description(self) -> str:
        return (f"Synthetic media: faces of {self.source} replaced by {self.target}'s by {GENERATOR} "
                f"(model {self.name}, step {self.step}, {self.model})")

    def tags(self) -> dict:
        return synthetic_tags(self.description(), f"{self.name} step {self.step}")


def synthetic_tags(description: str, model: str) -> dict:
    """The metadata that labels an output as synthetic media."""
    return {"comment": description, "description": description, "synthetic_media": "true",
            "generator": GENERATOR, "generator_model": model}


def partial_path(path: str) -> str:
    """A hidden temporary name beside `path`, with its extension (ffmpeg picks the container by it)."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.partial-{os.getpid()}{ext}")


def sweep_partials(path: str) -> None:
    """Removes the temporary files an earlier run for `path` left when it was killed."""
    folder, name = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(name)[0]
    prefix = f".{stem}.partial-"
    for entry in os.listdir(folder):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not files.process_alive(int(pid)):
            _remove(os.path.join(folder, entry))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class VideoWriter:
    """Frames in, a finished video at `path` after `close()`; `abort()` leaves nothing."""

    def __init__(self, path: str, size: tuple[int, int], fps: float, codec: str = "libx264", crf: int = 18,
                 preset: str = "veryfast", audio_from: str | None = None, audio_start: float | None = None,
                 provenance: Provenance | None = None):
        self.path = path
        self.size, self.fps = size, fps
        self.audio_from, self.audio_start = audio_from, audio_start
        self.provenance = provenance
        self.gif = path.lower().endswith(".gif")
        self.count = 0
        self.odd_size, self.pixel_format = False, None  # a GIF takes any size
        sweep_partials(path)
        self._frames: list[np.ndarray] = []  # a GIF is written whole at the end
        if self.gif:
            return
        stem, ext = os.path.splitext(partial_path(path))
        self._encoded = f"{stem}.video{ext}"  # the new video stream, before the audio is added
        x26x = codec in ("libx264", "libx265")
        params = ["-crf", str(crf), "-preset", preset] if x26x else []
        # 4:2:0 chroma needs even sides; 4:4:4 keeps an odd-sized video's size exactly.
        self.odd_size = bool(size[0] % 2 or size[1] % 2)
        self.pixel_format = "yuv444p" if self.odd_size and x26x else "yuv420p"
        self.codec = codec
        self._writer = imageio_ffmpeg.write_frames(
            self._encoded, size, fps=fps, codec=codec, quality=None, macro_block_size=1,
            pix_fmt_out=self.pixel_format, ffmpeg_log_level="error", output_params=params,
        )
        self._writer.send(None)  # starts ffmpeg

    def write(self, frame: np.ndarray) -> None:
        if self.gif:
            self._frames.append(frame)
        else:
            try:
                self._writer.send(np.ascontiguousarray(frame))
            except OSError as error:  # ffmpeg has gone: a codec that refuses, a full disk
                raise UserError(f"{self.path}: ffmpeg stopped encoding with {self.codec} after {self.count} "
                                f"frames ({brief(error)}; its own message is above)") from None
        self.count += 1

    def close(self) -> None:
        if self.gif:
            self._write_gif()
            return
        try:
            try:
                self._writer.close()
            except OSError as error:
                raise UserError(f"{self.path}: ffmpeg could not finish the video ({brief(error)})") from None
            final = partial_path(self.path)
            self._mux(final)
            try:
                os.replace(final, self.path)
            except OSError as error:
                raise UserError(f"{self.path}: cannot write it ({error.strerror or brief(error)})") from None
        finally:
            self.abort()

    def abort(self) -> None:
        if not self.gif:
            try:
                self._writer.close()
            except Exception:  # ffmpeg already gone: nothing left to flush
                pass
            _remove(self._encoded)
            _remove(partial_path(self.path))
        self._frames = []

    def _mux(self, final: str) -> None:
        """Copies the new video stream into `final`, with the source's audio and the metadata."""
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        command = [ffmpeg, "-y", "-v", "error", "-i", self._encoded]
        sliced = self.audio_start is not None
        if self.audio_from:
            if self.audio_start is not None:
                command += ["-ss", f"{self.audio_start:.6f}"]
            # The audio of the frames written, no longer: the video keeps every frame.
            command += ["-t", f"{self.count / self.fps:.6f}", "-i", self.audio_from,
                        "-map", "0:v:0", "-map", "1:a:0?"]
        metadata = ["-map_metadata", "-1"]
        for key, value in (self.provenance.tags() if self.provenance else {}).items():
            metadata += ["-metadata", f"{key}={value}"]
        if self.path.lower().endswith((".mp4", ".mov")):
            metadata += ["-movflags", "+use_metadata_tags"]
        for audio in ([] if sliced else ["copy"]) + ["aac"]:
            codec = ["-c:v", "copy", "-c:a", audio] + (["-b:a", "192k"] if audio == "aac" else [])
            done = subprocess.run(command + codec + metadata + [final], capture_output=True, text=True)
            if done.returncode == 0:
                return
        raise UserError(f"{self.path}: ffmpeg could not write the video ({done.stderr.strip()[-300:]})")

    def _write_gif(self) -> None:
        if not self._frames:
            raise UserError(f"{self.path}: no frames to write")
        tmp = partial_path(self.path)
        try:
            images = [Image.fromarray(frame) for frame in self._frames]
            comment = self.provenance.description() if self.provenance else ""
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                           duration=int(round(1000 / self.fps)), comment=comment.encode())
            os.replace(tmp, self.path)
        except OSError as error:
            raise UserError(f"{self.path}: cannot write it ({error.strerror or brief(error)})") from None
        finally:
            _remove(tmp)
            self._frames = []


def write_image(path: str, image: np.ndarray, tags: dict | None) -> None:
    """An RGB image with metadata `tags` (`synthetic_tags`: PNG text chunks; JPEG EXIF and comment)."""
    ext = os.path.splitext(path)[1].lower()
    tmp = partial_path(path)
    picture = Image.fromarray(image)
    description = (tags or {}).get("description", "")
    labelled = tags is not None
    try:
        if ext == ".png":
            info = PngImagePlugin.PngInfo()
            for key, value in (tags or {}).items():
                info.add_text(key.capitalize() if key in ("comment", "description") else key, value)
            picture.save(tmp, format="PNG", pnginfo=info)
        elif ext in (".jpg", ".jpeg", ".webp"):
            exif = Image.Exif()
            if labelled:
                exif[0x010E] = description  # ImageDescription
                exif[0x0131] = GENERATOR  # Software
            options = {"comment": description.encode()} if labelled and ext != ".webp" else {}
            picture.save(tmp, format="WEBP" if ext == ".webp" else "JPEG", quality=95, exif=exif, **options)
        else:
            raise UserError(f"{path}: write PNG, JPEG or WebP, which carry the synthetic-media note")
        os.replace(tmp, path)
    except OSError as error:
        raise UserError(f"{path}: cannot write it ({error.strerror or brief(error)})") from None
    finally:
        _remove(tmp)


def read_metadata(path: str) -> dict:
    """The container-level metadata of a video (ffmpeg's ffmetadata dump), lower-case keys."""
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", path, "-f", "ffmetadata", "-"],
                          capture_output=True, text=True)
    tags = {}
    for line in done.stdout.splitlines():
        if "=" in line and not line.startswith((";", "[")):
            key, value = line.split("=", 1)
            tags[key.strip().lower()] = value.strip()
    return tags


def transcode(source: str, output: str, codec: str = "libx264", crf: int = 18, preset: str = "veryfast") -> int:
    """A plain decode and encode with the converter's writer and settings (its audio too, no
    faces touched): the baseline the converter is measured and checked against. Returns the
    frame count."""
    from faceswap_tf import media

    info = media.probe_video(source)
    writer = VideoWriter(output, (info.width, info.height), info.fps or 25.0, codec, crf, preset,
                         audio_from=source if info.has_audio else None)
    try:
        for frame in media.iter_video(source):
            writer.write(frame)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.count
