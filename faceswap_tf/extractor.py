"""The extract stage: videos and images in, aligned face crops and an alignments file out.

The main process decodes (ffmpeg decodes in a process of its own) and hands frames to a pool
of worker processes, one per core, each holding its own dlib models: detect, landmarks,
alignment, PNG encoding and writing all happen there, so both cores stay busy. Results come
back in order.

Nothing of an earlier extract into the same folder is touched until this one has finished:
the workers write the new crops into a hidden staging folder (`.extract-PID-*`), and the
commit then (1) writes the alignments file, atomically, each face's record holding the
sha256 of its crop, (2) moves the staged crops into place and (3) deletes the crops no
record names any more. Killed before (1), the folder is as it was (the next run sweeps the
staging folder); killed between (1) and (2), the next run finishes the moves; and whatever
happens, a crop is checked against its record's hash when it is read (`data.read_crop`).
"""

import dataclasses
import hashlib
import multiprocessing
import multiprocessing.resource_tracker
import os
import re
import shutil
import sys
import tempfile
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
    files.make_folder(config.output_dir, "--output_dir")
    alignments_path = os.path.join(config.output_dir, alignments.FILE_NAME)
    previous = (
        alignments.load(alignments_path) if os.path.exists(alignments_path) else []
    )
    _check_crop_names(sources, previous)
    _finish_interrupted(config.output_dir, previous, log)
    _check_kept(config.output_dir, previous, set(sources), log)

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
    staging = tempfile.mkdtemp(prefix=f"{STAGING}{os.getpid()}-", dir=config.output_dir)
    try:
        _extract(config, sources, expected, reference, staging, summary, progress, records, log)
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
        _commit(alignments_path, staging, previous, records, set(sources))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _stop_resource_tracker()
    return summary


def _extract(config, sources, expected, reference, staging, summary, progress, records, log) -> None:
    """Runs the worker pool over every frame, crops into `staging`; fills `records`."""
    context = multiprocessing.get_context("spawn")  # safe beside TensorFlow's threads
    pool = context.Pool(config.worker_count, initializer=_init_worker, initargs=(config, reference, staging))
    try:
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
        pool.close()
    except OSError as error:  # a worker could not write its crop: a full disk, a file size limit
        raise UserError(f"{config.output_dir}: cannot write the crops ({error.strerror or error}); "
                        "nothing there was changed") from None
    finally:
        pool.terminate()
        pool.join()  # every worker gone before this returns: none outlives the run


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


STAGING = ".extract-"  # the staging folder of a run: .extract-PID-XXXX
_CROP = re.compile(r"^(.+)_\d{6}_\d+\.png$")


def _commit(path, staging, previous, records, sources) -> None:
    """Makes this run's faces the folder's: the alignments (this run's faces replacing earlier
    ones from the same sources) first, then the staged crops moved into place, then the crops
    no record names any more deleted."""
    folder = os.path.dirname(path)
    kept = [record for record in previous if record.source not in sources]
    try:
        alignments.save(path, kept + records)
    except OSError as error:
        raise UserError(f"{path}: cannot write it ({error.strerror or error}); nothing was changed: "
                        "the faces extracted before are all still there") from None
    _place(staging, folder, [record.file for record in records])
    named = {record.file for record in kept + records}
    stems = {_stem(source) for source in sources}
    for name in os.listdir(folder):
        match = _CROP.match(name)
        if match and match.group(1) in stems and name not in named:
            _remove(os.path.join(folder, name))


def _place(staging: str, folder: str, names) -> None:
    for name in names:
        os.replace(os.path.join(staging, name), os.path.join(folder, name))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _finish_interrupted(folder: str, previous, log) -> None:
    """Completes or sweeps what extracts killed in this folder left: a staging folder of a dead
    process whose crops its alignments file already records (killed between writing the
    alignments and moving the crops) has those crops moved into place; the rest is removed."""
    by_file = {record.file: record for record in previous}
    for entry in os.listdir(folder):
        if not entry.startswith(STAGING):
            continue
        pid = entry[len(STAGING):].split("-", 1)[0]
        if pid.isdigit() and files.process_alive(int(pid)):
            continue  # another extract is writing here now
        staging = os.path.join(folder, entry)
        moved = [name for name in sorted(os.listdir(staging))
                 if name in by_file and by_file[name].sha256 == _sha256(os.path.join(staging, name))]
        _place(staging, folder, moved)
        shutil.rmtree(staging, ignore_errors=True)
        if moved:
            log.write(f"note: {folder}: moved {len(moved)} crops of an interrupted extract into place\n")


def _check_kept(folder: str, previous, sources: set, log) -> None:
    """Warns (one line) when crops this run keeps (of other sources) are missing or no longer
    what their records say: training would refuse the folder."""
    damaged = {}
    for record in previous:
        if record.source in sources:
            continue  # replaced by this run
        path = os.path.join(folder, record.file)
        if not os.path.exists(path) or (record.sha256 and _sha256(path) != record.sha256):
            damaged.setdefault(record.source, []).append(record.file)
    for source, names in damaged.items():
        log.write(f"warning: {folder}: {len(names)} of the crops of {source} are missing or not those "
                  f"{alignments.FILE_NAME} records (first {names[0]}); extract it again\n")


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _stop_resource_tracker() -> None:
    """Waits for multiprocessing's resource tracker (started for the pool's semaphores) to
    end, so that it does not outlive this process as an orphan (a zombie where nothing reaps
    it)."""
    try:
        multiprocessing.resource_tracker._resource_tracker._stop()
    except (AttributeError, OSError, ChildProcessError):
        pass


# --- worker processes -------------------------------------------------------------------

_worker = None


class _Worker:
    def __init__(self, config: ExtractConfig, reference, staging: str):
        self.config, self.staging = config, staging
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
        encoded = png.tobytes()
        files.write_atomic(os.path.join(self.staging, name), encoded)
        timings["warp"] += middle - start
        timings["write"] += time.perf_counter() - middle
        return alignments.FaceRecord(
            source=source, frame=index, face=number, box=face.box,
            landmarks=face.landmarks.astype(np.float64), matrix=matrix,
            size=config.size, padding=config.padding, file=name, sha256=hashlib.sha256(encoded).hexdigest(),
        )


def _init_worker(config, reference, staging):
    global _worker
    _worker = _Worker(config, reference, staging)


def _process(task):
    return _worker(task)
