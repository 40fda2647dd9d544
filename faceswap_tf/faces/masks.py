"""Masks drawn from landmarks in crop space: the face, and the eye and mouth regions.

Training weights its reconstruction loss up inside the eye and mouth regions and uses the face
mask to judge the predicted alpha mask; the converter uses the face mask for blending.
"""

import cv2
import numpy as np

from faceswap_tf.faces import align, expression

# How far the eye and mouth regions reach past their landmarks, as a fraction of the
# inter-ocular distance: enough to cover eyelids, brows' lower edge and the lip line.
_EYE_MARGIN = 0.15
_MOUTH_MARGIN = 0.12
_SHIFT = 4  # polygons drawn with 1/16 pixel precision, so small crops get the same shapes


def _hull(points: np.ndarray) -> np.ndarray:
    # Pixel centres sit at integer coordinates in both OpenCV's drawing and its warps.
    return cv2.convexHull(np.round(np.asarray(points) * (1 << _SHIFT)).astype(np.int32))


def face_mask(landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 [size, size] (or [height, width] for a pair), 255 inside the convex hull of the
    68 points (jaw to eyebrows)."""
    mask = np.zeros(size if isinstance(size, tuple) else (size, size), np.uint8)
    cv2.fillConvexPoly(mask, _hull(landmarks), 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return mask


def region_masks(landmarks: np.ndarray, size: int | tuple[int, int]) -> dict[str, np.ndarray]:
    """uint8 [size, size] (or [height, width] for a pair) masks named "face", "eyes" and "mouth"
    for landmarks in the same pixels (a crop's or a frame's)."""
    shape = size if isinstance(size, tuple) else (size, size)
    left, right = align.eye_centres(landmarks)
    ocular = float(np.linalg.norm(right - left))
    eyes = np.zeros(shape, np.uint8)
    for eye in (align.LEFT_EYE, align.RIGHT_EYE):
        fill_dilated(eyes, landmarks[eye], _EYE_MARGIN * ocular)
    mouth = np.zeros(shape, np.uint8)
    fill_dilated(mouth, landmarks[align.MOUTH], _MOUTH_MARGIN * ocular)
    return {"face": face_mask(landmarks, size), "eyes": eyes, "mouth": mouth}


def fill_dilated(mask: np.ndarray, points: np.ndarray, margin: float) -> None:
    """Fills the hull of `points` grown by `margin` pixels into the uint8 `mask` (255), in place."""
    region = np.zeros_like(mask)
    cv2.fillConvexPoly(region, _hull(points), 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    radius = max(1, int(round(margin)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    np.maximum(mask, cv2.dilate(region, kernel), out=mask)


# The features that carry who someone is and what they express, with how far (of the
# inter-ocular distance) the skin stays clear of each: eyes, brows, nostrils, mouth.
_FEATURES = ((align.LEFT_EYE, 0.25), (align.RIGHT_EYE, 0.25), (slice(17, 22), 0.15), (slice(22, 27), 0.15),
             (slice(30, 36), 0.12), (align.MOUTH, 0.18))


def skin_mask(landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 [size, size] (or [height, width] for a pair), 255 on the face's skin: the hull of
    the 68 points (cheeks, forehead between the brows, nose bridge, chin) without the eyes,
    brows, nostrils and mouth, each with a margin. Where the converter may carry the frame's
    own skin detail, and where colour is matched and measured (a swap's features are its own)."""
    ocular = float(expression.eye_span(landmarks))
    skin = face_mask(landmarks, size)
    features = np.zeros_like(skin)
    for points, margin in _FEATURES:
        fill_dilated(features, landmarks[points], margin * ocular)
    skin[features > 0] = 0
    return skin
