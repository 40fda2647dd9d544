"""The evaluate stage: how good a swapped video is, measured against its original.

Each frame of the swapped video is paired with the original frame it was made from (found by
content, or from --start). In both, dlib finds the faces and their 68 landmarks; each
original face is paired with the swapped face over it. Per face and frame (`metrics` says
which stand-ins these are for the literature's):
- identity: the swapped face's dlib descriptor against galleries of A's and B's training
  faces; the share nearer B's is the identity retrieval between the pair;
- pose error: |yaw|, |pitch|, |roll| differences, swapped vs original (`faces.pose`);
- expression error: `metrics.expression_error`, swapped vs original;
- flicker: the mean change from the previous frame inside the original faces' hulls, in the
  swapped video over the same in the original (1 = as steady as the original);
- background: PSNR outside the original faces' aligned crops (the swap cannot reach there,
  so what is lost is the encoder's);
and, with the model_dir that made it, `metrics.HeldOutEvaluation` on the held-out aligned
faces (identity of the swaps and reconstruction PSNR/SSIM).

It writes <stem>_report.json (per-frame values and the summary), <stem>_report.md and
<stem>_contact_sheet.png (original | swapped frames, labelled as synthetic media).
"""

import collections
import dataclasses
import itertools
import json
import math
import os
import sys
import time

import cv2
import numpy as np

from faceswap_tf import exporter, files, media, metrics, report, run_record
from faceswap_tf.convert import video
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align, detect, identity, masks, pose
from faceswap_tf.framing import Framing
from faceswap_tf.progress import Progress

REPORT_FORMAT = "faceswap_tf-evaluation"
REPORT_VERSION = 1
_THUMB = 32  # side of the thumbnails frames are matched by
_MATCH_FRAMES = 8  # swapped frames matched at once
_MAX_MATCH_ERROR = 12.0  # mean |difference| per 8-bit channel above which no stretch matches
_MIN_IOU = 0.3


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    original: str
    swapped: str
    faces_a: str
    faces_b: str
    output_dir: str | None = None  # None: the swapped video's folder
    model_dir: str | None = None  # the training run: adds the held-out metrics
    start: float | None = None  # seconds into the original where the swapped video begins; None: found
    max_frames: int | None = None
    holdout: float | None = None  # None: the model's (config.json), else 0.2 as training's default
    gallery_size: int = 30
    min_face_size: int = 80
    sheet_rows: int = 6

    def __post_init__(self):
        for ok, message in (
            (self.start is None or self.start >= 0, f"--start={self.start}: must be 0 or more"),
            (self.max_frames is None or self.max_frames >= 2,
             f"--max_frames={self.max_frames}: must be 2 or more"),
            (self.holdout is None or 0.0 <= self.holdout < 1.0, f"--holdout={self.holdout}: must be in [0, 1)"),
            (self.gallery_size >= 1, f"--gallery_size={self.gallery_size}: must be at least 1"),
            (self.sheet_rows >= 1, f"--sheet_rows={self.sheet_rows}: must be at least 1"),
        ):
            if not ok:
                raise UserError(message)

    def output_path(self, suffix: str) -> str:
        folder = self.output_dir or os.path.dirname(os.path.abspath(self.swapped))
        stem = os.path.splitext(os.path.basename(self.swapped))[0]
        return os.path.join(folder, f"{stem}_{suffix}")


@dataclasses.dataclass(frozen=True)
class FrameMatch:
    """Where the swapped video begins in the original, and how well its first frames match."""

    offset: int
    error: float  # mean |difference| of the thumbnails, of 255
    other_offset: int | None = None  # the best match elsewhere (not within a few frames)
    other_error: float | None = None

    @property
    def ambiguous(self) -> bool:
        return self.other_error is not None and self.other_error < 1.25 * self.error + 0.5


def run(config: EvaluateConfig, log=sys.stderr) -> dict:
    """Evaluates config.swapped against config.original; writes and returns the report."""
    started = time.perf_counter()
    if config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
    for path in (config.original, config.swapped):
        if not media.is_video(path):
            raise UserError(f"{path}: not a video ({', '.join(sorted(media.VIDEO_EXTENSIONS))})")
    original, swapped = media.probe_video(config.original), media.probe_video(config.swapped)
    if (original.width, original.height) != (swapped.width, swapped.height):
        raise UserError(f"{config.swapped}: {swapped.width}x{swapped.height}, but {config.original} is "
                        f"{original.width}x{original.height}: it was not made from it")
    if original.fps and swapped.fps and abs(original.fps - swapped.fps) > 0.01 * original.fps:
        log.write(f"warning: {config.swapped} runs at {swapped.fps:g} frames/s and {config.original} at "
                  f"{original.fps:g}: frames are paired one to one all the same\n")
    record = run_record.read_checked(config.model_dir)[0] if config.model_dir else None
    holdout = _holdout(config, record)
    start = None if config.start is None else int(round(config.start * (original.fps or 25.0)))
    match = find_offset(config.original, config.swapped, start, log)
    how = "found by content" if start is None else f"--start={config.start}"
    log.write(f"{config.swapped}: from frame {match.offset} of {config.original} ({how}, mean difference "
              f"{match.error:.1f}/255)\n")
    if match.ambiguous:
        log.write(f"warning: frames from {match.other_offset} match about as well (mean difference "
                  f"{match.other_error:.1f}/255); if the pairing is wrong, pass --start\n")
    # Faces are cut from the frames as the model's were, or as A's extract cut them.
    framing = record.framing if record else run_record.describe_faces(config.faces_a, holdout)[1]
    describer = identity.FaceDescriber()
    galleries = {side: metrics.gallery(describer, folder, holdout, config.gallery_size)
                 for side, folder in (("a", config.faces_a), ("b", config.faces_b))}
    held_out = _held_out(config, holdout, describer, galleries) if record else None
    measure = _FrameMeasure(describer, galleries, framing,
                            detect.FaceDetector(detect.DetectorConfig(min_face_size=config.min_face_size)))
    frames, sheet = _measure_frames(config, match.offset, swapped.frames, measure, log)
    results = {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION,
        "inputs": {
            "original": config.original, "swapped": config.swapped, "faces_a": config.faces_a,
            "faces_b": config.faces_b, "model_dir": config.model_dir, "holdout": holdout,
            "first_frame": match.offset, "frames": len(frames), "fps": original.fps,
            "frame_match": dataclasses.asdict(match) | {"ambiguous": match.ambiguous},
            "gallery_faces": {side: len(g) for side, g in galleries.items()},
            "swapped_metadata": {k: v for k, v in video.read_metadata(config.swapped).items()
                                 if k in ("synthetic_media", "generator", "generator_model", "comment")},
        },
        "summary": summarise(frames),
        "held_out": held_out() if held_out else None,
        "frames": frames,
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    files.write_atomic(config.output_path("report.json"), json.dumps(_finite(results), indent=1) + "\n")
    sheet_path = config.output_path("contact_sheet.png")
    video.write_image(sheet_path, report.contact_sheet(sheet), video.synthetic_tags(
        f"Synthetic media: original | swapped frames of {os.path.basename(config.swapped)}, "
        f"made by {video.GENERATOR}", results["inputs"]["swapped_metadata"].get("generator_model", "unknown")))
    files.write_atomic(config.output_path("report.md"), report.markdown(results, os.path.basename(sheet_path)))
    for line in report.summary_lines(results):
        log.write(line + "\n")
    log.write(f"wrote {config.output_path('report.md')}, {config.output_path('report.json')} "
              f"and {sheet_path}\n")
    return results


def _holdout(config: EvaluateConfig, record: run_record.RunRecord | None) -> float:
    """The held-out share: the one the model was trained with, so that held-out means held out."""
    trained = record.holdout if record else None
    if trained is not None and config.holdout is not None and abs(trained - config.holdout) > 1e-9:
        raise UserError(f"--holdout={config.holdout}: {config.model_dir} was trained with --holdout={trained}, "
                        "which decides the faces it never saw; leave --holdout out")
    holdout = trained if trained is not None else (0.2 if config.holdout is None else config.holdout)
    if record and holdout <= 0:
        raise UserError(f"{config.model_dir}: trained with --holdout=0, so it has no held-out faces to measure")
    return holdout


def _decoded(path: str, log):
    """The frames of a video; a video that stops decoding part-way ends there, with a warning."""
    try:
        yield from media.iter_video(path)
    except media.DecodeError as error:
        log.write(f"warning: {error}; the frames before are used\n")


def find_offset(original: str, swapped: str, start: int | None = None, log=sys.stderr) -> FrameMatch:
    """Where `swapped` begins in `original`: its first frames' thumbnails matched against every
    stretch of the original (or only the one at `start`). A swap changes only the faces, so
    the true stretch differs little. Memory stays constant however long the videos are."""
    def thumb(frame):
        return cv2.resize(frame, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)

    ours = [thumb(frame) for frame in itertools.islice(_decoded(swapped, log), _MATCH_FRAMES)]
    sources = _decoded(original, log)
    if start is not None:
        sources = itertools.islice(sources, start, start + len(ours))
    window, errors = collections.deque(maxlen=len(ours)), []
    for frame in sources:
        window.append(thumb(frame))
        if len(window) == len(ours):
            errors.append(float(np.mean([np.abs(a - b).mean() for a, b in zip(window, ours, strict=True)])))
    if not errors:
        raise UserError(f"{swapped}: longer than {original} from frame {start or 0}, so not made from it")
    best = int(np.argmin(errors))
    if errors[best] > _MAX_MATCH_ERROR:
        if start is None:
            raise UserError(f"{swapped}: no stretch of {original} looks like it (mean difference "
                            f"{errors[best]:.0f}/255 at best); pass --start if it was made from it")
        raise UserError(f"{swapped}: does not look like {original} from frame {start} (--start; mean "
                        f"difference {errors[best]:.0f}/255)")
    others = [(error, i) for i, error in enumerate(errors) if abs(i - best) > _MATCH_FRAMES]
    other_error, other = min(others) if others else (None, None)
    return FrameMatch((start or 0) + best, errors[best], other, other_error)


class _FrameMeasure:
    """The per-frame measurements of one original frame and its swapped version."""

    def __init__(self, describer, galleries, framing: Framing, detector):
        self.describer, self.galleries = describer, galleries
        self.framing = framing
        self.detector = detector
        self.previous = None

    def __call__(self, index: int, source: np.ndarray, swapped: np.ndarray) -> dict:
        height, width = source.shape[:2]
        originals, candidates = self.detector(source), self.detector(swapped)
        # Frame -> aligned-crop matrices of the faces found in either frame, each fitted once.
        matrices = [self.framing.crop_matrix(face.landmarks) for face in originals + candidates]
        found = dict(zip(map(id, candidates), matrices[len(originals):], strict=True))
        faces, hull = [], np.zeros((height, width), bool)
        for face in originals:
            hull |= masks.face_mask(face.landmarks, (height, width)) > 127
            match = _best_match(face, candidates)
            faces.append(self._face(face, match, match and found[id(match)], swapped, (width, height)))
        # The background leaves out the crops of the faces found in either frame: a face the
        # converter tracked where this detector missed it in the original is not background.
        crops = np.zeros((height, width), np.uint8)
        for matrix in matrices:
            cv2.fillConvexPoly(crops, np.round(self.framing.crop_outline(matrix)).astype(np.int32), 1)
        background = crops == 0
        error = metrics.mse(source[background], swapped[background]) if background.any() else None
        entry = {"frame": index, "faces": faces, "background_mse": error,
                 "background_psnr": metrics.psnr_of_mse(error) if error is not None else None}
        if self.previous is not None and hull.any():
            pairs = zip(("original", "swapped"), (source, swapped), self.previous, strict=True)
            for name, now, before in pairs:
                entry[f"change_{name}"] = float(np.abs(now[hull].astype(np.float32) - before[hull]).mean())
        self.previous = (source, swapped)
        return entry

    def _face(self, face: detect.Face, match: detect.Face | None, matrix: np.ndarray | None,
              swapped: np.ndarray, size) -> dict:
        original_pose = pose.head_pose(face.landmarks, size)
        entry = {"box": list(face.box), "pose_original": original_pose.round(2).tolist(),
                 "found": match is not None}
        if match is None:
            return entry
        crop = self.framing.crop(swapped, matrix)
        descriptor = self.describer.describe(crop, align.transform_points(matrix, match.landmarks))
        found = metrics.retrieval(descriptor[None], self.galleries)
        swapped_pose = pose.head_pose(match.landmarks, size)
        entry.update({
            "distance_a": round(float(found["distance_a"][0]), 4),
            "distance_b": round(float(found["distance_b"][0]), 4),
            "closer_to_b": bool(found["closer_to_b"][0]),
            "pose_swapped": swapped_pose.round(2).tolist(),
            "pose_error": pose.angle_difference(original_pose, swapped_pose).round(2).tolist(),
            "pose_rotation_error": round(pose.rotation_between(original_pose, swapped_pose), 2),
            "expression_error": round(metrics.expression_error(face.landmarks, match.landmarks), 4),
        })
        return entry


def _best_match(face: detect.Face, candidates: list[detect.Face]) -> detect.Face | None:
    scored = [(detect.iou(face.box, other.box), other) for other in candidates]
    scored = [(score, other) for score, other in scored if score >= _MIN_IOU]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def _measure_frames(config, offset, expected, measure, log) -> tuple[list[dict], list]:
    """Per-frame entries, and the (entry, original, swapped) rows chosen for the contact sheet."""
    count = min(n for n in (expected, config.max_frames) if n) if (expected or config.max_frames) else None
    if count:
        chosen = set(np.linspace(0, count - 1, config.sheet_rows).round().astype(int).tolist())
    else:  # the length is unknown: a frame a second, roughly
        chosen = set(range(0, 30 * config.sheet_rows, 30))
    sources = itertools.islice(_decoded(config.original, log), offset, None)
    swaps = itertools.islice(_decoded(config.swapped, log), config.max_frames)
    frames, sheet = [], []
    progress = Progress(count, "frames", stream=log)
    for index, (source, swapped) in enumerate(zip(sources, swaps, strict=False)):  # either may end first
        entry = measure(offset + index, source, swapped)
        frames.append(entry)
        if index in chosen:
            sheet.append((entry, source, swapped))
        progress.update()
    progress.close()
    if len(frames) < 2:
        raise UserError(f"{config.swapped}: fewer than 2 frames to compare with {config.original}")
    return frames, sheet


def summarise(frames: list[dict]) -> dict:
    """The report's summary of per-frame entries."""
    faces = [face for entry in frames for face in entry["faces"]]
    found = [face for face in faces if face["found"]]
    summary = {"frames": len(frames), "faces": len(faces), "faces_found_in_swapped": len(found)}
    if found:
        errors = np.array([face["pose_error"] for face in found])  # NaN where a pose fit failed
        summary["identity"] = {
            "closer_to_b": float(np.mean([face["closer_to_b"] for face in found])),
            "distance_a": float(np.mean([face["distance_a"] for face in found])),
            "distance_b": float(np.mean([face["distance_b"] for face in found])),
        }
        summary["pose_error_degrees"] = {axis: float(np.nanmean(column)) for axis, column in zip(
            pose.AXES, errors.T, strict=True)}
        summary["pose_error_degrees"]["rotation"] = float(np.nanmean([f["pose_rotation_error"] for f in found]))
        summary["expression_error"] = float(np.mean([face["expression_error"] for face in found]))
    changes = [(e["change_original"], e["change_swapped"]) for e in frames if "change_original" in e]
    if changes:
        original, swapped = np.mean(changes, axis=0)
        summary["flicker"] = {"change_original": float(original), "change_swapped": float(swapped),
                              "ratio": float(swapped / original) if original > 0 else None}
    errors = [e["background_mse"] for e in frames if e["background_mse"] is not None]
    if errors:
        summary["background_psnr"] = {"mean": metrics.psnr_of_mse(float(np.mean(errors))),
                                      "worst_frame": metrics.psnr_of_mse(float(np.max(errors)))}
    return summary


def _held_out(config: EvaluateConfig, holdout: float, describer, galleries):
    """The held-out measurement, prepared now (so that a model problem shows before the long
    part) and run when called."""
    encoder, decoders, step, record = exporter.restore_generator(config.model_dir)
    evaluation = metrics.HeldOutEvaluation(
        {"a": config.faces_a, "b": config.faces_b}, holdout, record.framing, describer, galleries=galleries)

    def decode(side, views):
        out = decoders[side](encoder(views, training=False), training=False)
        return out["rgb"], out["mask"]

    def measure() -> dict:
        return {"step": step, "faces": {side: len(evaluation.held[side].crops) for side in evaluation.held},
                **evaluation(decode)}

    return measure


def _finite(value):
    """JSON has no infinity: an identical background's PSNR is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value

