"""Labelled fakes from the pipeline: the detector's dataset, built with the converter.

Each job runs one exported swapper in one direction over one video, through the converter's
own pipeline (`convert.converter.convert_video`: detection, tracking, alignment, swap, colour,
blend), and keeps per face: the original frame's aligned crop (real), the blended frame's crop
cut with the same matrix (fake), and the weights the face was blended with (the pixel ground
truth). Optionally both frame streams are also encoded as H.264 at each `crfs` value and the
same crops cut from the decoded frames, so real and fake faces are compressed alike and the
compression level says nothing about the label.

A training run's video is converted from its first held-out frame only (its run record says
which): faces the swapper trained on would be easier fakes than any a detector meets. A
video the swapper never saw (a cross pair) is converted whole.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys

import cv2
import numpy as np

from faceswap_tf import exporter, files, media, run_record
from faceswap_tf.convert import backends, converter, video
from faceswap_tf.detect import manifest as manifest_lib
from faceswap_tf.errors import UserError
from faceswap_tf.faces import detect
from faceswap_tf.signatures import DIRECTIONS

SCRATCH = ".scratch-"  # DATASET/.scratch-JOB: a job's re-encoded streams while it runs


@dataclasses.dataclass(frozen=True)
class SwapJob:
    model: str  # a training run's model_dir (exported into the dataset) or export/NAME[/VERSION]
    direction: str
    video: str

    @classmethod
    def parse(cls, spec: str) -> "SwapJob":
        """MODEL:DIRECTION:VIDEO, as --swap takes it."""
        parts = spec.split(":")
        if len(parts) != 3 or parts[1] not in DIRECTIONS or not parts[0] or not parts[2]:
            raise UserError(f"--swap={spec}: expected MODEL:DIRECTION:VIDEO, DIRECTION one of "
                            f"{', '.join(DIRECTIONS)}")
        return cls(parts[0], parts[1], parts[2])


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    output_dir: str
    jobs: tuple[SwapJob, ...]
    crfs: tuple[int, ...] = (23, 30, 35)
    max_frames: int | None = None  # per job, from its first frame
    every_nth: int = 1  # keep the faces of every Nth converted frame
    min_face_size: int = 80

    def __post_init__(self):
        if not self.jobs:
            raise UserError("give --pairs=MODEL_DIR,... or --swap=MODEL:DIRECTION:VIDEO")
        for crf in self.crfs:
            if not 0 <= crf <= 51:
                raise UserError(f"--crfs={crf}: must be in [0, 51]")
        if self.max_frames is not None and self.max_frames < 1:
            raise UserError(f"--max_frames={self.max_frames}: must be at least 1")
        if self.every_nth < 1:
            raise UserError(f"--every_nth={self.every_nth}: must be at least 1")


def pair_jobs(model_dir: str) -> list[SwapJob]:
    """Both directions of a training run, each on the held-out frames of its source's videos."""
    record = run_record.read(model_dir)
    jobs = []
    for direction, (source, _) in DIRECTIONS.items():
        jobs += [SwapJob(model_dir, direction, path) for path in sorted(record.faces[source].held_out_from)]
    return jobs


def build(config: DatasetConfig, log=sys.stderr) -> manifest_lib.Manifest:
    """Converts every job the manifest lacks and adds its faces; returns the manifest."""
    for job in config.jobs:  # every input checked before anything is written
        if not os.path.isfile(job.video):
            raise UserError(f"--swap: {job.video}: no such video")
        if not media.is_video(job.video):
            raise UserError(f"--swap: {job.video}: not a video")
    files.make_folder(config.output_dir, "--output_dir")
    found = manifest_lib.read(config.output_dir, missing_ok=True)
    for name in os.listdir(config.output_dir):  # the scratch folders of runs that were killed
        if name.startswith(SCRATCH):
            shutil.rmtree(os.path.join(config.output_dir, name), ignore_errors=True)
    for job in config.jobs:
        backend, model_dir = _swapper(job.model, job.direction, config.output_dir)
        first, held_out = _first_frame(model_dir, backend.metadata, job)
        name = _job_name(backend, model_dir, job, first, config)
        if name in found.jobs:
            log.write(f"{name}: already in the dataset\n")
            continue
        entry, faces = _convert(config, backend, model_dir, job, name, first, held_out, log)
        found.jobs[name] = entry
        found.faces.extend(faces)
        manifest_lib.write(config.output_dir, found)
        log.write(f"{name}: {len(faces)} faces of {entry.source} swapped to {entry.target}\n")
    return found


def _swapper(model: str, direction: str, output_dir: str):
    """The local backend of `model` and the training run behind it (None if unknown). A
    model_dir is exported (once per step) into OUTPUT_DIR/models."""
    if os.path.exists(run_record.path_of(model)):
        stem = os.path.basename(os.path.abspath(model))
        # Named after the folder and where it is: two runs' folders both called "model" differ.
        where = hashlib.sha1(os.path.abspath(model).encode()).hexdigest()[:6]
        name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in stem) + f"-{where}"
        path = exporter.export(exporter.ExportConfig(
            model, name, direction=direction, export_dir=os.path.join(output_dir, "models"), reuse=True))
        return backends.LocalSavedModel(path), os.path.abspath(model)
    backend = backends.LocalSavedModel(model)
    model_dir = backend.metadata.model_dir
    if model_dir and os.path.exists(run_record.path_of(model_dir)):
        return backend, model_dir
    return backend, None


def _first_frame(model_dir: str | None, metadata, job: SwapJob) -> tuple[int, bool]:
    """Where the job starts: the run's first held-out frame of a training video; 0 for a video
    the run never saw. UserError for the target's own training video (B swapped into B)."""
    if model_dir is None:
        return 0, False
    record = run_record.read(model_dir)
    source, target = DIRECTIONS[metadata.direction]
    video_path = os.path.abspath(job.video)
    if video_path in record.faces[target].held_out_from:
        raise UserError(f"--swap={job.model}:{job.direction}:{job.video}: that is the video of "
                        f"{metadata.target}, whose face {job.direction} draws; give a video of "
                        f"{metadata.source} or another person")
    held = record.faces[source].held_out_from.get(video_path)
    return (held, True) if held is not None else (0, False)


def _job_name(backend, model_dir: str | None, job: SwapJob, first: int, config: DatasetConfig) -> str:
    """The job's name in the manifest: the swapper (its training run where known, not where
    its export lies, so a dataset copied elsewhere and extended keeps its jobs), its step, the
    direction, the video and the settings that decide which faces are converted."""
    meta = backend.metadata
    swapper = os.path.abspath(model_dir or backend.path)
    key = json.dumps([swapper, meta.step, job.direction, os.path.abspath(job.video), first, config.max_frames,
                      config.every_nth, list(config.crfs), config.min_face_size])
    stem = os.path.splitext(os.path.basename(job.video))[0]
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{meta.model_name or 'model'}-{meta.step}-{job.direction}-{stem}-{digest}"


def _convert(config, backend, model_dir, job, name, first, held_out, log):
    info = media.probe_video(job.video)
    fps = info.fps or 25.0
    end = None if config.max_frames is None else (first + config.max_frames) / fps
    videos = os.path.join(config.output_dir, "videos")
    crops = os.path.join(config.output_dir, "crops", name)
    scratch = os.path.join(config.output_dir, f"{SCRATCH}{name}")
    for folder in (videos, crops):
        files.make_folder(folder, "--output_dir")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    convert = converter.ConvertConfig(
        input=job.video, output=os.path.join(videos, f"{name}.mp4"), model=backend.path, faces="largest",
        detector=detect.DetectorConfig(min_face_size=config.min_face_size), start=first / fps, end=end,
        blend="alpha")  # alpha: the weights the face is pasted with are exactly the mask kept
    meta = backend.metadata
    framing = meta.framing
    provenance = converter.provenance_of(backend)
    writers = {(crf, kind): video.VideoWriter(
        os.path.join(scratch, f"{kind}_{crf}.mp4"), (info.width, info.height), fps, crf=crf,
        provenance=provenance if kind == "fake" else None) for crf in config.crfs for kind in ("real", "fake")}
    kept: list[tuple[int, int, dict]] = []  # (position in the stream, face index, record)
    fitter = detect.FaceDetector(convert.detector)  # the swapped face's own landmarks
    position = {"n": 0}

    def on_frame(original: np.ndarray, frame_job) -> None:
        for (_, kind), writer in writers.items():
            writer.write(original if kind == "real" else frame_job.frame)
        if (frame_job.index - first) % config.every_nth == 0:
            for i, face in enumerate(frame_job.faces):
                stem = f"{frame_job.index}_{i}"
                fake = framing.crop(frame_job.frame, face.matrix)
                shown = fitter.landmarks(fake, detect.landmark_box(face.landmarks))
                record = {"job": name, "frame": frame_job.index, "face": i,
                          "matrix": np.asarray(face.matrix).round(6).tolist(), "crf": {},
                          "landmarks": np.asarray(face.landmarks).round(1).tolist(),
                          "fake_landmarks": np.asarray(shown).round(1).tolist()}
                parts = {"real": face.crop, "fake": fake,
                         "mask": np.round(face.blend_mask * 255.0).clip(0, 255).astype(np.uint8)}
                for kind, image in parts.items():
                    record[kind] = _save_png(config.output_dir, crops, f"{stem}_{kind}.png", image)
                kept.append((position["n"], i, record))
        position["n"] += 1

    try:
        try:
            converter.convert_video(convert, backend, log, on_frame=on_frame)
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for writer in writers.values():
            writer.close()
        for crf in config.crfs:
            for kind in ("real", "fake"):
                _recrop(os.path.join(scratch, f"{kind}_{crf}.mp4"), kept, crf, kind, framing,
                        config.output_dir, crops)
    except BaseException:  # the manifest will not name them: nothing of the job is left
        shutil.rmtree(crops, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not kept:  # the swapped video (the input re-encoded) is of no use: nothing is left
        os.remove(convert.output)
        shutil.rmtree(crops, ignore_errors=True)
        raise UserError(f"{job.video}: no face found in the frames converted (from frame {first}); "
                        "nothing added to the dataset")
    entry = manifest_lib.Job(
        model=os.path.abspath(backend.path), model_name=meta.model_name or "?", model_dir=model_dir,
        step=meta.step, direction=job.direction, source=os.path.splitext(os.path.basename(job.video))[0],
        target=meta.target,
        video=os.path.abspath(job.video), first_frame=first, held_out=held_out,
        framing=dataclasses.replace(framing, coverage=None, resolution=None), crfs=tuple(config.crfs),
        swapped_video=os.path.relpath(convert.output, config.output_dir))
    return entry, [manifest_lib.Face(**record) for _, _, record in kept]


def _recrop(path, kept, crf, kind, framing, output_dir, crops) -> None:
    """The kept faces' crops cut, with their matrices, from the re-encoded stream at `path`."""
    wanted = {}
    for where, i, record in kept:
        wanted.setdefault(where, []).append((i, record))
    for where, frame in enumerate(media.iter_video(path)):
        for i, record in wanted.get(where, ()):
            crop = framing.crop(frame, np.asarray(record["matrix"]))
            saved = _save_png(output_dir, crops, f"{record['frame']}_{i}_{kind}_crf{crf}.png", crop)
            record["crf"].setdefault(str(crf), {})[kind] = saved
    missing = [record for _, _, record in kept if kind not in record["crf"].get(str(crf), {})]
    if missing:
        raise UserError(f"{path}: the re-encoded stream lost frames ({len(missing)} faces without a crop)")


def _save_png(output_dir: str, folder: str, file_name: str, image: np.ndarray) -> str:
    """Writes `image` (RGB or grey uint8) atomically; returns its path relative to the dataset."""
    path = os.path.join(folder, file_name)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    files.write_atomic(path, png.tobytes())
    return os.path.relpath(path, output_dir)
