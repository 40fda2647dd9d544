"""The extract stage: videos and images in, aligned face crops and an alignments file out.

The main process decodes (ffmpeg decodes in a process of its own) and hands frames to a pool
of worker processes, one per core, each holding its own dlib models: detect, landmarks,
alignment, PNG encoding and writing all happen there, so both cores stay busy. Results come
back in order; the alignments file is written once, at the end, atomically.
"""

import dataclasses
import multiprocessing
import os
import sys
import time

import cv2
import numpy as np

from faceswap_tf import files, media
from faceswap_tf.errors import UserError
from faceswap_tf.faces import alignments, detect, identity
from faceswap_tf.faces.select import FaceSelector
from faceswap_tf.framing import Framing
from faceswap_tf.progress import Progress
from faceswap_tf.summary import RunSummary

STAGES = ("decode", "detect", "landmarks", "identity", "warp", "write")


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    input: str
    output_dir: str
    detector: detect.DetectorConfig = dataclasses.field(default_factory=detect.DetectorConfig)
    size: int = 256
    padding: float = 0.2
    every_nth: int = 1
    largest_face: bool = False
    reference: str | None = None
    reference_distance: float = identity.DEFAULT_MATCH_DISTANCE
    descriptor_model: str | None = None
    keyframe_interval: int = 8  # full-frame detection every N frames in videos; 1: every frame
    workers: int = 0  # 0: one per core

    def __post_init__(self):
        if not 16 <= self.size <= 2048:
            raise UserError(f"--size={self.size}: must be between 16 and 2048 pixels")
        if not 0.0 <= self.padding < 0.5:
            raise UserError(f"--padding={self.padding}: must be in [0, 0.5)")
        if self.every_nth < 1:
            raise UserError(f"--every_nth={self.every_nth}: must be at least 1")
        if self.keyframe_interval < 1:
            raise UserError(f"--keyframe_interval={self.keyframe_interval}: must be at least 1")
        if self.workers < 0:
            raise UserError(f"--workers={self.workers}: must be 0 (one per core) or more")

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


def run(config: ExtractConfig, log=sys.stderr) -> RunSummary:
    """Extracts every face in `config.input` into `config.output_dir`.

    Raises UserError when nothing usable was found; bad files inside a folder are reported on
    `log`, skipped and counted in the summary.
    """
    sources = [os.path.abspath(path) for path in media.list_media(config.input)]
    os.makedirs(config.output_dir, exist_ok=True)
    alignments_path = os.path.join(config.output_dir, alignments.FILE_NAME)
    previous = (
        alignments.load(alignments_path) if os.path.exists(alignments_path) else []
    )
    _check_crop_names(sources, previous)

    # Loaded here too so that a bad model file is one clear error, not failing workers.
    detector = detect.FaceDetector(config.detector)
    reference = None
    if config.reference:
        reference = identity.reference_descriptor(
            config.reference, detector, identity.FaceDescriber(config.descriptor_model)
        )

    summary = RunSummary(STAGES, sources=len(sources))
    expected = _expected_frames(sources)
    total = None if None in expected.values() else sum(
        -(-frames // config.every_nth) for frames in expected.values()
    )
    progress = Progress(total, "frames", stream=log)
    records: list[alignments.FaceRecord] = []
    context = multiprocessing.get_context("spawn")  # safe beside TensorFlow's threads
    with context.Pool(
        config.worker_count, initializer=_init_worker, initargs=(config, reference)
    ) as pool:
        tasks = _tasks(sources, expected, config, summary, log)
        for results, timings in pool.imap(_process, tasks):
            summary.add_times(timings)
            for faces, rejected, error in results:
                if error:
                    _report(summary, error, log)
                    continue
                summary.frames += 1
                summary.faces += len(faces)
                summary.faces_rejected += rejected
                summary.frames_with_face += bool(faces)
                records.extend(faces)
                progress.update()
    progress.close()
    summary.seconds = progress.elapsed

    if not records:
        if len(sources) == 1 and summary.files_skipped:
            raise UserError(summary.files_skipped[0])
        rejected = f", {summary.faces_rejected} not the reference person" if reference is not None else ""
        if len(sources) == 1:
            raise UserError(
                f"{config.input}: no usable face in {summary.frames} frame(s) "
                f"(faces of at least {config.detector.min_face_size} px{rejected})"
            )
        raise UserError(
            f"{config.input}: no usable face in {len(sources)} files "
            f"({summary.frames} frames read, {len(summary.files_skipped)} unreadable{rejected})"
        )
    _save(alignments_path, previous, records, set(sources))
    return summary


def _tasks(sources, expected, config, summary, log):
    """(source, [(frame index, frame or None), ...]) segments for the workers: an image alone
    (the worker reads it), or a run of consecutive video frames decoded here, long enough for
    the face tracker to pay off. Unreadable sources are reported and skipped."""
    segment_length = 2 * config.keyframe_interval
    for source in sources:
        if media.is_image(source):
            yield source, [(0, None)]
            continue
        segment = []
        index = -1
        start = time.perf_counter()
        try:
            for index, frame in enumerate(media.iter_video(source)):
                summary.stage_seconds["decode"] += time.perf_counter() - start  # skipped ones too
                if index % config.every_nth == 0:
                    segment.append((index, frame))
                    if len(segment) == segment_length:
                        yield source, segment
                        segment = []
                start = time.perf_counter()
        except UserError as err:
            _report(summary, str(err), log)
        except media.DecodeError as err:
            # Keep what decoded; the file counts as damaged, not as unusable.
            log.write(f"warning: {err}; keeping the frames before\n")
        if segment:
            yield source, segment
        if expected.get(source) and index + 1 < 0.9 * expected[source]:
            log.write(f"warning: {source}: {index + 1} frames decoded of about {expected[source]} "
                      "the container announces (truncated?)\n")


def _report(summary: RunSummary, message: str, log) -> None:
    summary.files_skipped.append(message)
    if summary.sources > 1:  # a lone file's problem is the run's one error line
        log.write(f"skipped: {message}\n")


def _expected_frames(sources) -> dict[str, int | None]:
    """Frames per source as the containers announce them (1 for an image, None if unknown);
    unreadable sources are left out here and reported when read."""
    expected = {}
    for source in sources:
        if media.is_image(source):
            expected[source] = 1
            continue
        try:
            expected[source] = media.probe_video(source).frames
        except UserError:
            pass
    return expected


def _check_crop_names(sources, previous) -> None:
    """Crop files are named after their source's stem; two sources must not share one."""
    owners = {}
    for source in [*sources, *(record.source for record in previous)]:
        stem = _stem(source)
        if owners.setdefault(stem, source) != source:
            raise UserError(
                f"{source}: its crops would share names with those of {owners[stem]}; "
                "rename one of them or use another --output_dir"
            )


def _stem(source: str) -> str:
    return os.path.splitext(os.path.basename(source))[0]


def _save(path, previous, records, sources) -> None:
    """Writes the alignments: this run's faces replace earlier ones from the same sources,
    whose crops are deleted unless this run wrote them again."""
    kept = [record for record in previous if record.source not in sources]
    written = {record.file for record in records}
    folder = os.path.dirname(path)
    for record in previous:
        if record.source in sources and record.file not in written:
            try:
                os.remove(os.path.join(folder, record.file))
            except FileNotFoundError:
                pass
    alignments.save(path, kept + records)


# --- worker processes -------------------------------------------------------------------

_worker = None


class _Worker:
    def __init__(self, config: ExtractConfig, reference):
        self.config = config
        self.detector = detect.FaceDetector(config.detector)
        self.framing = Framing(config.size, config.padding)
        describer = identity.FaceDescriber(config.descriptor_model) if reference is not None else None
        self.selector = FaceSelector(config.largest_face, reference, describer, config.reference_distance)

    def __call__(self, task):
        source, segment = task
        timings = dict.fromkeys(STAGES, 0.0)
        tracker = detect.FaceTracker(self.detector, self.config.keyframe_interval)
        results = []
        for index, frame in segment:
            if frame is None:
                start = time.perf_counter()
                try:
                    frame = media.read_image(source)
                except UserError as err:
                    results.append(([], 0, str(err)))
                    continue
                finally:
                    timings["decode"] += time.perf_counter() - start
            results.append(self._frame(source, index, frame, tracker(frame, timings), timings))
        return results, timings

    def _frame(self, source, index, frame, faces, timings):
        start = time.perf_counter()
        selection = self.selector(frame, faces)
        timings["identity"] += time.perf_counter() - start
        return [self._write(source, index, i, faces[i], frame, timings) for i in selection.chosen], \
            selection.rejected, None

    def _write(self, source, index, number, face, frame, timings):
        config = self.config
        start = time.perf_counter()
        matrix = self.framing.crop_matrix(face.landmarks)
        crop = self.framing.crop(frame, matrix)
        middle = time.perf_counter()
        name = f"{_stem(source)}_{index:06d}_{number}.png"
        ok, png = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {name}")
        files.write_atomic(os.path.join(config.output_dir, name), png.tobytes())
        timings["warp"] += middle - start
        timings["write"] += time.perf_counter() - middle
        return alignments.FaceRecord(
            source=source, frame=index, face=number, box=face.box,
            landmarks=face.landmarks.astype(np.float64), matrix=matrix,
            size=config.size, padding=config.padding, file=name,
        )


def _init_worker(config, reference):
    global _worker
    _worker = _Worker(config, reference)


def _process(task):
    return _worker(task)
