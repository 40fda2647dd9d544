"""Scoring videos and images with an exported detector: per face, per frame, per video.

Faces are found and framed as everywhere else in the project: the extract stage's detection
(`faces/detect.py`) and the framing the detector carries (`framing.Framing`, its template).
A frame's score is its most suspicious face's; a video's is the median of its frames'
(`scores.pooled`; frames without a face do not count), judged against the threshold in the
detector's metadata: swapped when at least half of its frames are flagged.
Outputs: a JSON report, optionally a plot of the score over time and an overlay video marking
each face's score, labelled as an analysis product in its picture and its metadata.
"""

import dataclasses
import json
import os
import sys
import time

import cv2
import numpy as np

from faceswap_tf import files, media, signatures
from faceswap_tf.convert import backends, video
from faceswap_tf.detect import scores
from faceswap_tf.errors import UserError
from faceswap_tf.faces import detect
from faceswap_tf.progress import Progress

OVERLAY_TEXT = "ANALYSIS - deepfake detector scores (faceswap-tf)"


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    model: str  # export/NAME[/VERSION] of a detector
    input: str  # a video, an image or a folder of them
    report: str  # the JSON report to write
    overlay: str | None = None  # a video: the input with each face's score drawn on it
    plot: str | None = None  # a PNG: the frame scores over time
    every_nth: int = 1
    min_face_size: int = 80
    batch_size: int = 32

    def __post_init__(self):
        if self.every_nth < 1:
            raise UserError(f"--every_nth={self.every_nth}: must be at least 1")
        if not self.report.lower().endswith(".json"):
            raise UserError(f"--report={self.report}: give a .json file")
        if self.overlay and os.path.splitext(self.overlay)[1].lower() not in video.VIDEO_EXTENSIONS:
            raise UserError(f"--overlay={self.overlay}: give a video file "
                            f"({', '.join(video.VIDEO_EXTENSIONS)})")
        if self.plot and not self.plot.lower().endswith(".png"):
            raise UserError(f"--plot={self.plot}: give a .png file")


@dataclasses.dataclass(frozen=True)
class AnalysisLabel:
    """The metadata of an overlay: an analysis product, not footage (VideoWriter's provenance)."""

    model: str

    def description(self) -> str:
        return f"Analysis product: deepfake detector scores drawn by faceswap-tf (detector {self.model})"

    def tags(self) -> dict:
        return {"comment": self.description(), "description": self.description(), "analysis_product": "true",
                "generator": "faceswap-tf detector", "generator_model": self.model}


class DetectorClient:
    """An exported detector in this process: aligned crops -> fake probabilities."""

    def __init__(self, model: str):
        self.backend = backends.LocalSavedModel(model, signatures.DETECTOR)
        self.metadata: signatures.DetectorMetadata = self.backend.metadata
        self.framing = self.metadata.framing
        self.template = np.asarray(self.metadata.template_points, np.float64)
        self.weights = np.asarray(self.metadata.fit_weights, np.float64)

    def crops(self, frame: np.ndarray, faces: list) -> list[np.ndarray]:
        return [self.framing.crop(frame, self.framing.crop_matrix(face.landmarks, self.template, self.weights))
                for face in faces]

    def probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros([0], np.float32)
        return self.backend.call("serving_default", faces=np.stack(crops))["probability"]


def run(config: ScoreConfig, log=sys.stderr) -> dict:
    """Scores `config.input`; writes the report (and plot, overlay); returns the report."""
    sources = media.list_media(config.input)
    single_video = len(sources) == 1 and media.is_video(sources[0])
    if config.overlay and not single_video:
        raise UserError(f"--overlay={config.overlay}: only for one video (the input is not one)")
    for path, flag in ((config.report, "--report"), (config.overlay, "--overlay"), (config.plot, "--plot")):
        if path:
            if os.path.exists(path) and any(os.path.samefile(path, s) for s in sources):
                raise UserError(f"{flag}={path}: is an input; write it elsewhere")
            files.check_folder(os.path.dirname(os.path.abspath(path)), flag, path)
    client = DetectorClient(config.model)
    finder = detect.FaceDetector(detect.DetectorConfig(min_face_size=config.min_face_size))
    started = time.perf_counter()
    results = []
    for path in sources:
        if media.is_video(path):
            results.append(_score_video(config, client, finder, path, log))
        else:
            results.append(_score_image(client, finder, path))
    if not any(r["faces"] for r in results):
        raise UserError(f"{config.input}: no face found (--min_face_size={config.min_face_size}); "
                        "nothing scored")
    meta = client.metadata
    report = {"detector": client.backend.path, "step": meta.step, "threshold": meta.threshold,
              "analysis": meta.analysis, "seconds": round(time.perf_counter() - started, 2), "inputs": results}
    if config.plot and single_video:
        _plot(results[0], meta.threshold, config.plot)
    files.write_atomic(config.report, json.dumps(report, indent=1) + "\n")
    for r in results:
        verdict = r.get("verdict", "no face")
        log.write(f"{r['path']}: {verdict} (score {r['score']:.3f}, {r['faces']} faces)\n"
                  if r["faces"] else f"{r['path']}: no face found\n")
    return report


def _summary(path: str, kind: str, faces: list[dict], frames: list[dict], threshold: float) -> dict:
    scored = [f["score"] for f in frames if f["score"] is not None]
    score = scores.pooled(scored)
    out = {"path": os.path.abspath(path), "kind": kind, "faces": len(faces), "frames": len(frames),
           "frames_with_face": len(scored), "score": score,
           "share_of_faces_flagged": float(np.mean([f["fake"] for f in faces])) if faces else 0.0,
           "frame_scores": frames, "face_scores": faces}
    if faces:
        out["verdict"] = "swapped" if score >= threshold else "real"
    return out


def _score_faces(client, finder, frame, index, fps, threshold) -> tuple[list, dict, list]:
    found = finder(frame)
    probabilities = client.probabilities(client.crops(frame, found))
    faces = [{"frame": index, "face": i, "box": [int(v) for v in face.box], "probability": float(p),
              "fake": bool(p >= threshold)}
             for i, (face, p) in enumerate(zip(found, probabilities, strict=True))]
    frame_entry = {"frame": index, "time": round(index / fps, 3) if fps else None,
                   "score": float(probabilities.max()) if len(faces) else None, "faces": len(faces)}
    return faces, frame_entry, found


def _score_image(client, finder, path) -> dict:
    frame = media.read_image(path)
    faces, entry, _ = _score_faces(client, finder, frame, 0, None, client.metadata.threshold)
    return _summary(path, "image", faces, [entry], client.metadata.threshold)


def _score_video(config, client, finder, path, log) -> dict:
    info = media.probe_video(path)
    fps = info.fps or 25.0
    threshold = client.metadata.threshold
    writer = None
    if config.overlay:
        writer = video.VideoWriter(config.overlay, (info.width, info.height), fps,
                                   provenance=AnalysisLabel(client.backend.path))
    faces, frames, drawn = [], [], []
    progress = Progress(info.frames, "frames", stream=log)
    try:
        for index, frame in enumerate(media.iter_video(path)):
            if index % config.every_nth == 0:
                found_faces, entry, found = _score_faces(client, finder, frame, index, fps, threshold)
                faces += found_faces
                frames.append(entry)
                drawn = [(face.box, f["probability"]) for face, f in zip(found, found_faces, strict=True)]
            if writer:
                writer.write(_overlay(frame, drawn, threshold))
            progress.update()
        if writer:
            writer.close()
    except BaseException:
        if writer:
            writer.abort()
        raise
    finally:
        progress.close()
    return _summary(path, "video", faces, frames, threshold)


def _overlay(frame: np.ndarray, drawn: list, threshold: float) -> np.ndarray:
    out = frame.copy()
    for (left, top, right, bottom), probability in drawn:
        colour = (230, 40, 40) if probability >= threshold else (40, 200, 40)
        cv2.rectangle(out, (left, top), (right, bottom), colour, 2)
        label = f"{'swapped' if probability >= threshold else 'real'} {probability:.2f}"
        cv2.putText(out, label, (left, max(12, top - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    from faceswap_tf.convert import blend

    blend.watermark(out, OVERLAY_TEXT)
    return out


def _plot(result: dict, threshold: float, path: str, size=(640, 240)) -> None:
    """The frame scores over time, the threshold dashed, as a PNG: the title above the plot,
    probability 1 and 0 marked at its right edge, so a line along 0 stays readable."""
    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    frames = result["frame_scores"]
    last = max(f["frame"] for f in frames) or 1
    top, bottom = 26, height - 8
    y_of = lambda p: int(round(bottom - p * (bottom - top)))  # noqa: E731
    for p, label in ((1.0, "1"), (0.0, "0")):
        cv2.line(image, (0, y_of(p)), (width - 1, y_of(p)), (225, 225, 225), 1)
        cv2.putText(image, label, (width - 12, y_of(p) - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1,
                    cv2.LINE_AA)
    for x in range(0, width, 12):
        cv2.line(image, (x, y_of(threshold)), (x + 6, y_of(threshold)), (120, 120, 120), 1)
    points = [(int(round(f["frame"] / last * (width - 1))), y_of(f["score"]))
              for f in frames if f["score"] is not None]
    if len(points) > 1:
        cv2.polylines(image, [np.array(points, np.int32)], False, (40, 40, 200), 2)
    for point in points:
        cv2.circle(image, point, 2, (40, 40, 200), -1)
    title = f"fake probability per frame (threshold {threshold:.2f}); {os.path.basename(result['path'])}"
    cv2.putText(image, title, (6, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", image)
    files.write_atomic(path, png.tobytes())
