"""Swapping faces in videos and images: the per-frame work and the pipeline around it.

Per frame: faces found by dlib (on a downscaled frame; in a video, tracked so that a full
detection runs only every `keyframe_interval` frames), their 68 landmarks smoothed over time,
the faces to swap chosen (all, the largest, or those matching a reference person), each
aligned to the exported model's crop with the template and framing the model carries, the
crops batched across frames through the swapper, and each result colour-matched, its mask
eroded and feathered, and blended back into the frame.

A video runs as a pipeline of threads joined by bounded queues: decode -> find faces ->
swap -> blend and encode. dlib, OpenCV, TensorFlow and ffmpeg (its own processes) do the
work outside Python's lock, so the stages overlap on the cores.
"""

import dataclasses
import os
import queue
import sys
import threading
import time

import numpy as np

from faceswap_tf import files, media
from faceswap_tf.convert import backends, blend, video
from faceswap_tf.convert.tracks import Smoother, TrackedFace, Tracks
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align, detect, identity, masks
from faceswap_tf.faces.select import FaceSelector
from faceswap_tf.framing import Framing
from faceswap_tf.progress import Progress
from faceswap_tf.signatures import SwapperMetadata
from faceswap_tf.summary import RunSummary

FACE_CHOICES = ("all", "largest")
MASKS = ("learned", "hull")
STAGES = ("decode", "detect", "landmarks", "identify", "align", "swap", "blend", "encode")
WATERMARK_TEXT = "SYNTHETIC MEDIA - face swapped"


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    input: str
    output: str
    model: str | None = None  # export/NAME[/VERSION]
    serving_url: str | None = None  # TF Serving instead of the local SavedModel
    serving_timeout: float = 30.0
    faces: str = "all"
    reference: str | None = None
    reference_distance: float = identity.DEFAULT_MATCH_DISTANCE
    detector: detect.DetectorConfig = dataclasses.field(default_factory=detect.DetectorConfig)
    keyframe_interval: int = 8
    smoothing: float = 2.0  # sigma of the temporal smoothing, in frames; 0 turns it off
    colour: str = "local"
    erode: float = 0.02  # of the crop size
    feather: float = 0.03  # of the crop size
    blend: str = "alpha"
    mask: str = "learned"  # the model's mask, or that mask within the hull of the face's landmarks
    detail: float = 0.0  # how much of the frame's fine skin detail replaces the swap's (0 to 1)
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    start: float | None = None  # seconds
    end: float | None = None
    held_out_of: str | None = None  # a training run's model_dir: convert only the frames it held out
    watermark: bool = False
    batch_size: int = 8

    def __post_init__(self):
        if bool(self.model) == bool(self.serving_url):
            raise UserError("give one of --model=export/NAME[/VERSION] or --serving_url=...")
        checks = [
            (self.faces in FACE_CHOICES, f"--faces={self.faces}: choose {' or '.join(FACE_CHOICES)}"),
            (self.colour in blend.COLOUR_MODES,
             f"--colour={self.colour}: choose {', '.join(blend.COLOUR_MODES)}"),
            (self.blend in blend.BLEND_MODES, f"--blend={self.blend}: choose {' or '.join(blend.BLEND_MODES)}"),
            (self.smoothing >= 0, f"--smoothing={self.smoothing}: must be 0 (off) or more"),
            (0 <= self.erode < 0.5, f"--erode={self.erode}: must be in [0, 0.5)"),
            (0 <= self.feather < 0.5, f"--feather={self.feather}: must be in [0, 0.5)"),
            (self.mask in MASKS, f"--mask={self.mask}: choose {' or '.join(MASKS)}"),
            (0 <= self.detail <= 1, f"--detail={self.detail}: must be in [0, 1]"),
            (0 <= self.crf <= 51, f"--crf={self.crf}: must be in [0, 51]"),
            (self.batch_size >= 1, f"--batch_size={self.batch_size}: must be at least 1"),
            (self.keyframe_interval >= 1, f"--keyframe_interval={self.keyframe_interval}: must be at least 1"),
            (self.start is None or self.start >= 0, f"--start={self.start}: must be 0 or more"),
            (self.end is None or self.end > (self.start or 0), f"--end={self.end}: must be after --start"),
            (self.held_out_of is None or self.start is None, "give --start or --held_out_of, not both"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


@dataclasses.dataclass
class FaceJob:
    matrix: np.ndarray  # frame -> aligned crop
    crop: np.ndarray  # uint8 [S, S, 3]
    landmarks: np.ndarray  # [68, 2] in crop pixels
    swapped: np.ndarray | None = None
    mask: np.ndarray | None = None  # [S, S] float32
    blend_mask: np.ndarray | None = None  # [S, S] float32: the weights the face was pasted with


@dataclasses.dataclass
class FrameJob:
    index: int
    frame: np.ndarray
    faces: list[FaceJob]


class FaceFinder:
    """Finds, selects and aligns the faces to swap in each frame."""

    def __init__(self, config: ConvertConfig, metadata: SwapperMetadata, stream: bool, timings: dict):
        self.config, self.timings = config, timings
        self.detector = detect.FaceDetector(config.detector)
        self.tracker = detect.FaceTracker(self.detector, config.keyframe_interval) if stream else None
        self.tracks = Tracks()
        self.smoother = Smoother(config.smoothing if stream else 0.0)
        self.framing = metadata.framing
        self.template = np.asarray(metadata.template_points, dtype=np.float64)
        self.weights = np.asarray(metadata.fit_weights, dtype=np.float64)
        self.selector = FaceSelector.from_options(config.faces == "largest", config.reference, self.detector,
                                                  config.reference_distance)

    def reset(self) -> None:
        """Forgets the faces seen so far (before an unrelated image)."""
        self.tracks = Tracks()
        self.selector.reset()

    def push(self, index: int, frame: np.ndarray) -> list[FrameJob]:
        """This frame's faces; returns the frames whose smoothing window is complete."""
        faces = self.tracker(frame, self.timings) if self.tracker else self.detector(frame, self.timings)
        return [self._job(*ready) for ready in self.smoother.push((index, frame), self.tracks(faces))]

    def flush(self) -> list[FrameJob]:
        return [self._job(*ready) for ready in self.smoother.flush()]

    def _job(self, item, faces: list[TrackedFace]) -> FrameJob:
        index, frame = item
        start = time.perf_counter()
        selection = self.selector(frame, [face.face for face in faces], [face.track for face in faces], index)
        self.timings["identify"] = self.timings.get("identify", 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        jobs = []
        for i in selection.chosen:
            matrix = self.framing.crop_matrix(faces[i].landmarks, self.template, self.weights)
            jobs.append(FaceJob(matrix, self.framing.crop(frame, matrix),
                                align.transform_points(matrix, faces[i].landmarks)))
        self.timings["align"] = self.timings.get("align", 0.0) + time.perf_counter() - start
        return FrameJob(index, frame, jobs)


class Blender:
    """Colour, mask and paste-back of the swapped faces of a frame, in place."""

    def __init__(self, config: ConvertConfig, framing: Framing):
        self.config = config
        self.detail_sigma = blend.detail_sigma(framing)

    def __call__(self, job: FrameJob) -> None:
        config = self.config
        for face in job.faces:
            mask = face.mask
            if config.mask == "hull":
                mask = mask * masks.face_mask(face.landmarks, mask.shape[0]).astype(np.float32) / 255.0
            mask = face.blend_mask = blend.shape_mask(mask, config.erode, config.feather)
            coloured = blend.colour_transfer(face.swapped, face.crop, mask, config.colour, face.landmarks)
            detail = None
            if config.detail > 0:
                detail = config.detail * blend.detail_weight(face.landmarks, face.crop.shape[0]) * mask
            blend.paste(job.frame, coloured, mask, face.matrix, config.blend, detail, self.detail_sigma)
        if config.watermark:
            blend.watermark(job.frame, WATERMARK_TEXT)


def swap_faces(backend, jobs: list[FrameJob]) -> None:
    """Runs every face of these frames through the swapper in one batch."""
    faces = [face for job in jobs for face in job.faces]
    if not faces:
        return
    swapped, masks = backend.swap(np.stack([face.crop for face in faces]))
    for face, out, mask in zip(faces, swapped, masks, strict=True):
        face.swapped, face.mask = out, mask[..., 0]


def provenance_of(backend) -> video.Provenance:
    meta = backend.metadata
    return video.Provenance(model=backend.description, name=meta.model_name or "?", step=meta.step,
                            source=meta.source, target=meta.target)


def run(config: ConvertConfig, log=sys.stderr) -> RunSummary:
    """Converts `config.input` (a video, an image or a folder of images) into `config.output`."""
    kind = _kind(config)
    if config.held_out_of:  # from the first held-out frame: as a time, it is exact to the frame
        start = held_out_start(config.held_out_of, config.input) / (media.probe_video(config.input).fps or 25.0)
        config = dataclasses.replace(config, start=start, held_out_of=None)
    _check_output(config, kind)
    backend = backends.connect(config.model, config.serving_url, timeout=config.serving_timeout)
    if kind == "video":
        return convert_video(config, backend, log)
    return convert_images(config, backend, log)


def held_out_start(model_dir: str, video_path: str) -> int:
    """The first frame of `video_path` that the training run in `model_dir` held out (its run
    record says); UserError if the run never trained on that video."""
    from faceswap_tf import run_record  # TensorFlow, only when asked for

    record = run_record.read(model_dir)
    for face_set in record.faces.values():
        held = face_set.held_out_from.get(os.path.abspath(video_path))
        if held is not None:
            return held
    raise UserError(f"--held_out_of={model_dir}: that run never trained on {video_path} (its faces came from "
                    f"{', '.join(sorted(s for f in record.faces.values() for s in f.held_out_from))})")


def _kind(config: ConvertConfig) -> str:
    source, target = config.input, config.output
    if not os.path.exists(source):
        raise UserError(f"{source}: no such file or folder")
    out_ext = os.path.splitext(target)[1].lower()
    if config.held_out_of and (os.path.isdir(source) or not media.is_video(source)):
        raise UserError(f"--held_out_of: {source} is not a video; only a video has held-out frames")
    if os.path.isdir(source):
        if out_ext:
            raise UserError(f"--output={target}: give a folder for a folder of images")
        return "folder"
    if media.is_video(source):
        if out_ext not in video.VIDEO_EXTENSIONS:
            raise UserError(f"--output={target}: a video converts to {', '.join(video.VIDEO_EXTENSIONS)}")
        return "video"
    if media.is_image(source):
        if out_ext not in video.WRITABLE_IMAGES:
            raise UserError(f"--output={target}: an image converts to {', '.join(video.WRITABLE_IMAGES)}")
        return "image"
    raise UserError(f"{source}: neither a video nor an image this tool reads")


def _check_output(config: ConvertConfig, kind: str) -> None:
    """UserError before any work for an output that would replace an input (the same file
    under any name, or a folder inside the input folder), that is a folder where a file goes
    (or the reverse), or whose folder is missing or cannot be written."""
    flag = f"--output={config.output}"
    source, target = os.path.realpath(config.input), os.path.realpath(config.output)
    if kind == "folder":
        if target == source or target.startswith(source + os.sep):
            raise UserError(f"{flag}: inside the input folder {config.input}; the swaps would replace or "
                            "mix with the originals: write them to another folder")
        files.check_folder(config.output, "--output")
        return
    if os.path.isdir(config.output):
        raise UserError(f"{flag}: is a folder; give the file to write")
    if os.path.exists(config.output) and os.path.samefile(config.input, config.output):
        raise UserError(f"{flag}: is the input {config.input} itself; the swap would replace the original: "
                        "write it to another file")
    folder = os.path.dirname(os.path.abspath(config.output))
    if not os.path.isdir(folder):
        raise UserError(f"{flag}: no folder {folder} to write it in")
    files.check_folder(folder, "--output", config.output)


class _Pipeline:
    """Threads joined by bounded queues; the first error anywhere stops them all."""

    DONE = object()

    def __init__(self):
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def channel(self, size=32) -> queue.Queue:
        return queue.Queue(maxsize=size)

    def put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return self.DONE

    def start(self, target, downstream: queue.Queue) -> None:
        def body():
            try:
                target()
            except BaseException as error:  # handed to the main thread, which raises it
                if self.error is None:
                    self.error = error
                self.stop.set()
            finally:
                self.put(downstream, self.DONE)

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def convert_video(config: ConvertConfig, backend, log=sys.stderr, on_frame=None) -> RunSummary:
    """Converts the video; `on_frame(original, job)`, if given, sees each frame as decoded and
    its job once blended (the detect stage's labelled fakes: crops, matrices, blend weights)."""
    info = media.probe_video(config.input)
    fps = info.fps or 25.0
    first = int(round((config.start or 0.0) * fps))
    last = int(round(config.end * fps)) if config.end is not None else None
    summary = RunSummary(STAGES, verb="swapped", sources=1)
    if info.variable_rate:
        summary.warnings.append(
            f"{config.input}: a variable frame rate ({info.average_fps:g} frames/s on average); converted at "
            f"a constant {fps:g} frames/s, each frame repeated for as long as the original shows it, so the "
            "timing and the audio stay as they were")
    timings = summary.stage_seconds
    finder = FaceFinder(config, backend.metadata, stream=True, timings=timings)
    blender = Blender(config, backend.metadata.framing)
    writer = video.VideoWriter(
        config.output, (info.width, info.height), fps, config.codec, config.crf, config.preset,
        audio_from=config.input if info.has_audio else None,
        audio_start=config.start, provenance=provenance_of(backend),
    )
    if writer.odd_size:
        summary.warnings.append(
            f"{config.input}: {info.width}x{info.height}, an odd size, kept: encoded with full-resolution "
            f"colour ({writer.pixel_format}), which some players (web browsers, QuickTime) do not play")
    expected = info.frames if last is None else min(last, info.frames or last)
    total = max(0, expected - first) if expected is not None else None
    progress = Progress(total, "frames", stream=log)
    pipeline = _Pipeline()
    frames_q, found_q, swapped_q = pipeline.channel(), pipeline.channel(), pipeline.channel()
    decoded = {"count": 0}

    def decode():
        frames = media.iter_video(config.input)
        index = 0
        try:
            while True:
                start = time.perf_counter()
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                finally:
                    timings["decode"] += time.perf_counter() - start
                decoded["count"] = index + 1
                if last is not None and index >= last:
                    break
                if index >= first:
                    pipeline.put(frames_q, (index, frame))
                index += 1
        except media.DecodeError as error:
            summary.warnings.append(f"{error}; converted what decoded")

    def find():
        while (item := pipeline.get(frames_q)) is not pipeline.DONE:
            for job in finder.push(*item):
                pipeline.put(found_q, job)
        for job in finder.flush():
            pipeline.put(found_q, job)

    def swap():
        done = False
        while not done:
            batch, faces = [], 0
            while faces < config.batch_size and len(batch) < 4 * config.batch_size:
                job = pipeline.get(found_q)
                if job is pipeline.DONE:
                    done = True
                    break
                batch.append(job)
                faces += len(job.faces)
            start = time.perf_counter()
            swap_faces(backend, batch)
            timings["swap"] += time.perf_counter() - start
            for job in batch:
                pipeline.put(swapped_q, job)

    started = time.perf_counter()
    pipeline.start(decode, frames_q)
    pipeline.start(find, found_q)
    pipeline.start(swap, swapped_q)
    try:
        while (job := pipeline.get(swapped_q)) is not pipeline.DONE:
            start = time.perf_counter()
            original = job.frame.copy() if on_frame else None
            blender(job)
            if on_frame:
                on_frame(original, job)
            middle = time.perf_counter()
            writer.write(job.frame)
            timings["blend"] += middle - start
            timings["encode"] += time.perf_counter() - middle
            summary.frames += 1
            summary.frames_with_face += bool(job.faces)
            summary.faces += len(job.faces)
            progress.update()
        if pipeline.error is not None:
            raise pipeline.error
        if summary.frames == 0:
            raise UserError(f"{config.input}: no frames in the range converted")
        start = time.perf_counter()
        writer.close()
        timings["encode"] += time.perf_counter() - start
    except BaseException:
        writer.abort()
        raise
    finally:
        pipeline.close()
        progress.close()
    summary.seconds = time.perf_counter() - started
    if info.frames and last is None and decoded["count"] < 0.9 * info.frames and not summary.warnings:
        summary.warnings.append(f"{config.input}: decoded {decoded['count']} of the {info.frames} frames "
                                "the container announces (truncated?); converted what decoded")
    if summary.faces == 0:
        summary.warnings.append(f"{config.input}: no face found in any of its {summary.frames} frames; "
                                "the output is the input re-encoded")
    return summary


def convert_images(config: ConvertConfig, backend, log=sys.stderr) -> RunSummary:
    folder = os.path.isdir(config.input)
    sources = media.list_media(config.input)
    if folder:
        sources = [path for path in sources if media.is_image(path)]
        if not sources:
            raise UserError(f"{config.input}: no images in it")
        files.make_folder(config.output, "--output")
        for path in sources:  # an output folder holding the inputs under other names (links)
            target = _image_target(config.output, path)
            if os.path.exists(target) and os.path.samefile(path, target):
                raise UserError(f"--output={config.output}: {target} is the input {path} itself; write the "
                                "swaps to another folder")
    summary = RunSummary(STAGES, verb="swapped", sources=len(sources))
    finder = FaceFinder(config, backend.metadata, stream=False, timings=summary.stage_seconds)
    blender = Blender(config, backend.metadata.framing)
    provenance = provenance_of(backend)
    started = time.perf_counter()
    for path in sources:
        try:
            frame = media.read_image(path)
        except UserError as error:
            if not folder:
                raise
            log.write(f"skipped: {error}\n")
            summary.files_skipped.append(str(error))
            continue
        finder.reset()
        jobs = finder.push(0, frame) + finder.flush()
        swap_faces(backend, jobs)
        for job in jobs:
            blender(job)
            summary.faces += len(job.faces)
            summary.frames_with_face += bool(job.faces)
        summary.frames += 1
        target = _image_target(config.output, path) if folder else config.output
        video.write_image(target, frame, provenance.tags() if jobs and jobs[0].faces else None)
        if not (jobs and jobs[0].faces):
            log.write(f"note: {path}: no face to swap; written unchanged\n")
    summary.seconds = time.perf_counter() - started
    return summary


def _image_target(output_folder: str, path: str) -> str:
    stem, ext = os.path.splitext(os.path.basename(path))
    ext = ext if ext.lower() in video.WRITABLE_IMAGES else ".png"
    return os.path.join(output_folder, stem + ext)
