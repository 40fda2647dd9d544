"""Face detection (dlib HOG or CNN) and the 68-point landmarks.

Detection runs on a downscaled greyscale copy of the frame, as small as the minimum face size
allows; the landmarks are then fitted on the full-resolution frame, so the downscale costs no
landmark precision. The model files come from the `face_recognition_models` package.
"""

import dataclasses
import importlib.util
import os
import time

import cv2
import dlib
import numpy as np

from faceswap_tf.errors import UserError

_MODEL_FILES = {
    "landmarks": "shape_predictor_68_face_landmarks.dat",
    "cnn": "mmod_human_face_detector.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
}


def packaged_model_path(kind: str) -> str:
    """Path of one of dlib's model files as installed by `face_recognition_models`.

    Found from the package's location without importing it (its __init__ needs the
    deprecated pkg_resources).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "face_recognition_models is not installed: it ships dlib's model files "
            "(pip install face_recognition_models), or pass the model paths by flag"
        )
    return os.path.join(spec.submodule_search_locations[0], "models", _MODEL_FILES[kind])


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face, in full-resolution frame pixels."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    score: float
    landmarks: np.ndarray  # float32 [68, 2], (x, y)

    @property
    def size(self) -> int:
        left, top, right, bottom = self.box
        return max(right - left, bottom - top)


def _hog_detector(_config):
    detector = dlib.get_frontal_face_detector()

    def detect(gray):
        rects, scores, _ = detector.run(gray, 0, 0.0)
        return list(zip(rects, scores, strict=True))

    return detect


def _cnn_detector(config):
    path = config.cnn_model or packaged_model_path("cnn")
    detector = _load(dlib.cnn_face_detection_model_v1, path)

    def detect(gray):
        return [(d.rect, d.confidence) for d in detector(gray, 0)]

    return detect


# name -> (factory, smallest face in pixels the detector finds at its native scale)
DETECTORS = {
    "hog": (_hog_detector, 80),
    "cnn": (_cnn_detector, 50),
}


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    detector: str = "hog"
    min_face_size: int = 80  # faces smaller than this (frame pixels) are neither sought nor kept
    landmark_model: str | None = None  # None: the packaged file
    cnn_model: str | None = None

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise UserError(f"--detector={self.detector}: choose one of {', '.join(DETECTORS)}")
        if self.min_face_size < 8:
            raise UserError(f"--min_face_size={self.min_face_size}: must be at least 8 pixels")

    @property
    def detect_scale(self) -> float:
        """Scale of the frame for detection, so a face of `min_face_size` just stays findable."""
        native = DETECTORS[self.detector][1]
        return native / self.min_face_size


class FaceDetector:
    """Finds faces and their 68 landmarks in RGB frames."""

    def __init__(self, config: DetectorConfig):
        self.config = config
        self._detect = DETECTORS[config.detector][0](config)
        self._predictor = _load(
            dlib.shape_predictor, config.landmark_model or packaged_model_path("landmarks")
        )

    def __call__(self, frame: np.ndarray, timings: dict | None = None) -> list[Face]:
        """Faces in an RGB uint8 frame, largest first.

        With `timings`, adds the seconds spent in "detect" and "landmarks" to it.
        """
        start = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        scale = self.config.detect_scale
        small = gray
        if scale != 1.0:
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interp)
        found = self._detect(small)
        middle = time.perf_counter()
        faces = []
        for rect, score in found:
            box = dlib.rectangle(
                int(round(rect.left() / scale)),
                int(round(rect.top() / scale)),
                int(round(rect.right() / scale)),
                int(round(rect.bottom() / scale)),
            )
            if max(box.width(), box.height()) < self.config.min_face_size:
                continue
            faces.append(
                Face(
                    box=(box.left(), box.top(), box.right(), box.bottom()),
                    score=float(score),
                    landmarks=landmarks_to_array(self._predictor(gray, box)),
                )
            )
        faces.sort(key=lambda face: face.size, reverse=True)
        if timings is not None:
            timings["detect"] = timings.get("detect", 0.0) + middle - start
            timings["landmarks"] = timings.get("landmarks", 0.0) + time.perf_counter() - middle
        return faces

    def landmarks(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The 68 landmarks inside a known box (a tracked face, an aligned crop)."""
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return landmarks_to_array(self._predictor(gray, dlib.rectangle(*box)))


def landmarks_to_array(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _load(factory, path: str):
    if not os.path.isfile(path):
        raise UserError(f"{path}: model file not found")
    try:
        return factory(path)
    except RuntimeError as err:
        raise UserError(f"{path}: not a usable dlib model file ({err})") from None
