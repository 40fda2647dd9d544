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
    detector = load_model(dlib.cnn_face_detection_model_v1, path)

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
        self._predictor = load_model(
            dlib.shape_predictor, config.landmark_model or packaged_model_path("landmarks")
        )

    def __call__(self, frame: np.ndarray, timings: dict | None = None) -> list[Face]:
        """Faces in an RGB (or already greyscale) uint8 frame, largest first.

        With `timings`, adds the seconds spent in "detect" and "landmarks" to it.
        """
        gray = _gray(frame)
        height, width = gray.shape
        found = self._boxes(gray, (0, 0, width, height), self.config.detect_scale, timings)
        faces = self._fit(gray, found, timings)
        faces.sort(key=lambda face: face.size, reverse=True)
        return faces

    def near(self, frame: np.ndarray, face: Face, timings: dict | None = None) -> Face | None:
        """The same face in a following frame, sought only in a window around where it was.

        The window is twice the face's size, scaled down as far as the face stays findable, so
        it costs a fraction of a full-frame detection. None when the face is not there any more.
        """
        gray = _gray(frame)
        height, width = gray.shape
        left, top, right, bottom = face.box
        cx, cy, reach = (left + right) / 2, (top + bottom) / 2, face.size
        window = (max(0, int(cx - reach)), max(0, int(cy - reach)),
                  min(width, int(cx + reach)), min(height, int(cy + reach)))
        native = DETECTORS[self.config.detector][1]
        # A face may shrink by a fifth between frames and still be found.
        scale = min(self.config.detect_scale, 1.25 * native / face.size)
        found = self._boxes(gray, window, scale, timings)
        overlaps = [(iou(box, face.box), box, score) for box, score in found]
        best = max(overlaps, default=None, key=lambda item: item[0])
        if best is None or best[0] < 0.3:
            return None
        return self._fit(gray, [best[1:]], timings)[0]

    def _boxes(self, gray, window, scale, timings):
        """Detector boxes (frame pixels) of faces of at least min_face_size inside `window`."""
        start = time.perf_counter()
        x0, y0, x1, y1 = window
        image = gray[y0:y1, x0:x1]
        if scale != 1.0:
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interp)
        boxes = []
        for rect, score in self._detect(image):
            box = (
                int(round(rect.left() / scale)) + x0,
                int(round(rect.top() / scale)) + y0,
                int(round(rect.right() / scale)) + x0,
                int(round(rect.bottom() / scale)) + y0,
            )
            if max(box[2] - box[0], box[3] - box[1]) >= self.config.min_face_size:
                boxes.append((box, float(score)))
        _add_time(timings, "detect", start)
        return boxes

    def _fit(self, gray, boxes, timings) -> list[Face]:
        """The 68 landmarks for each box, on the full-resolution frame."""
        start = time.perf_counter()
        faces = [
            Face(box=box, score=score,
                 landmarks=landmarks_to_array(self._predictor(gray, dlib.rectangle(*box))))
            for box, score in boxes
        ]
        _add_time(timings, "landmarks", start)
        return faces

    def landmarks(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The 68 landmarks inside a known box (a tracked face, an aligned crop; `landmark_box`)."""
        gray = _gray(frame)
        return landmarks_to_array(self._predictor(gray, dlib.rectangle(*box)))


# Where dlib's detector puts its box around a face's 68 landmarks, in parts of their extent:
# left, top, right, bottom edges (the mean over 3656 faces of four of the sample clips).
_BOX_FROM_LANDMARKS = (-0.059, -0.111, 0.050, -0.072)


def landmark_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """The box dlib's detector would give a face with these 68 landmarks: where to fit them
    again on an altered copy of the same image (a swapped crop)."""
    (left, top), (right, bottom) = np.min(landmarks, axis=0), np.max(landmarks, axis=0)
    width, height = right - left, bottom - top
    dl, dt, dr, db = _BOX_FROM_LANDMARKS
    return (int(round(left + dl * width)), int(round(top + dt * height)),
            int(round(right + dr * width)), int(round(bottom + db * height)))


class FaceTracker:
    """Finds faces in consecutive video frames, with a full-frame detection only every
    `keyframe_interval` frames, or when a tracked face is lost, or while there is none.

    In between, each face is sought again near where it was (`FaceDetector.near`), so a face
    that enters the picture beside tracked ones is found at the next keyframe at the latest.
    """

    def __init__(self, detector: FaceDetector, keyframe_interval: int = 8):
        self.detector = detector
        self.keyframe_interval = keyframe_interval
        self._faces: list[Face] = []
        self._since_keyframe = 0

    def __call__(self, frame: np.ndarray, timings: dict | None = None) -> list[Face]:
        gray = _gray(frame)
        faces = None
        if self._faces and self._since_keyframe < self.keyframe_interval:
            faces = [self.detector.near(gray, face, timings) for face in self._faces]
            if any(face is None for face in faces):
                faces = None  # lost one: the picture changed, look everywhere
        if faces is None:
            faces = self.detector(gray, timings)
            self._since_keyframe = 0
        self._since_keyframe += 1
        faces.sort(key=lambda face: face.size, reverse=True)
        self._faces = faces
        return faces


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def iou(a, b) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _add_time(timings: dict | None, stage: str, start: float) -> None:
    if timings is not None:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def landmarks_to_array(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def load_model(factory, path: str):
    """A dlib model from its file; UserError naming the file if it is missing or unusable."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: model file not found")
    try:
        return factory(path)
    except RuntimeError as err:
        raise UserError(f"{path}: not a usable dlib model file ({err})") from None
