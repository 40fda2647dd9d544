"""Expression measures of a face's 68 landmarks: how far the mouth and the eyes are open.

Both are distances between dlib's 68 points over the eye span (the distance between the two
eye centres), so they do not depend on the face's size in the picture, and stay comparable
between two people: 0 is a closed mouth or closed eyes.

- mouth opening: the mean gap between the inner lips (points 61-67, 62-66, 63-65);
- eye aperture: the mean gap between the eyelids, over both eyes (37-41, 38-40, 43-47, 44-46).
"""

import numpy as np

from faceswap_tf.faces import align

_INNER_LIPS = np.array([[61, 67], [62, 66], [63, 65]])
_EYELIDS = np.array([[37, 41], [38, 40], [43, 47], [44, 46]])


def eye_span(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres of [..., 68, 2] landmarks."""
    landmarks = np.asarray(landmarks, np.float64)
    left = landmarks[..., align.LEFT_EYE, :].mean(axis=-2)
    right = landmarks[..., align.RIGHT_EYE, :].mean(axis=-2)
    return np.linalg.norm(right - left, axis=-1)


def _gaps(landmarks: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    landmarks = np.asarray(landmarks, np.float64)
    gaps = np.linalg.norm(landmarks[..., pairs[:, 0], :] - landmarks[..., pairs[:, 1], :], axis=-1)
    return gaps.mean(axis=-1) / np.maximum(eye_span(landmarks), 1e-6)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the eye span, of [..., 68, 2] landmarks (a float for one face)."""
    return _gaps(landmarks, _INNER_LIPS)


def eye_aperture(landmarks: np.ndarray) -> np.ndarray:
    """Eyelid gap over the eye span, both eyes averaged, of [..., 68, 2] landmarks."""
    return _gaps(landmarks, _EYELIDS)
