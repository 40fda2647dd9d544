"""Alignment maths: a similarity transform from 68 landmarks to the project's face template.

The aligned crop of a face is `cv2.warpAffine(frame, matrix, (size, size))` where `matrix`
(2x3) maps frame pixels to crop pixels. It is the least-squares similarity transform
(rotation, uniform scale, translation; Umeyama 1991) taking the face's 51 inner landmarks (the
jaw line, points 0-16, is left out because it moves with the mouth and the pose) onto
`TEMPLATE_68`, placed in the crop with `padding` on each side.
"""

import cv2
import numpy as np

INNER = slice(17, 68)  # eyebrows, nose, eyes, mouth: the points the transform is fitted to
JAW = slice(0, 17)
LEFT_EYE = slice(36, 42)  # the subject's right eye, on the left of the image
RIGHT_EYE = slice(42, 48)
MOUTH = slice(48, 68)

# Weight of each point in the fit. The eyes and nose are rigid, while brows and lips move with
# expression; weighting the eyes most keeps them level and in place across a clip (measured
# on the sample clips with dlib run again on the crops: mean eye-line tilt 2.35 degrees with
# equal weights, 1.0 with these; eye-position spread 1.1% -> 0.4% of the crop on identity_b).
FIT_WEIGHTS = np.zeros(68)
FIT_WEIGHTS[17:27] = 0.5  # eyebrows
FIT_WEIGHTS[27:36] = 2.0  # nose
FIT_WEIGHTS[36:48] = 16.0  # eyes
FIT_WEIGHTS[48:68] = 0.5  # lips

# dlib's 68 points mirrored left-right: MIRROR[i] is the point that i becomes in a flipped face.
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # eyebrows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 similarity T minimising sum w_i |T(src_i) - dst_i|^2 (Umeyama, 1991, weighted).

    Exact for points related by a similarity; no outlier rejection (landmarks have none).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    src_mean, dst_mean = w @ src, w @ dst
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = (dst_c * w[:, None]).T @ src_c
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0  # a reflection is not a similarity: take the nearest rotation
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / (w @ np.square(src_c).sum(axis=1))
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def template_points(size: int, padding: float, template: np.ndarray | None = None) -> np.ndarray:
    """The template (TEMPLATE_68 by default) in crop pixels: the inner face fills
    `1 - 2 * padding` of the crop."""
    template = TEMPLATE_68 if template is None else np.asarray(template)
    return (padding + template * (1.0 - 2.0 * padding)) * size


def alignment_matrix(landmarks: np.ndarray, size: int, padding: float, template: np.ndarray | None = None,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 frame-to-crop matrix for a face with these 68 frame-pixel landmarks (template
    and weights: TEMPLATE_68 and FIT_WEIGHTS, unless given, as an exported model carries them)."""
    weights = FIT_WEIGHTS if weights is None else np.asarray(weights)
    used = weights > 0
    return umeyama(np.asarray(landmarks)[used], template_points(size, padding, template)[used],
                   np.asarray(weights)[used])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies a 2x3 affine matrix to [N, 2] points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    """The crop-to-frame matrix for a frame-to-crop matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def warp_face(frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The aligned crop; areas outside the frame are filled by reflection, not black."""
    return cv2.warpAffine(
        frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def unwarp_face(crop: np.ndarray, matrix: np.ndarray, frame_shape) -> np.ndarray:
    """Puts a crop (or a mask in crop space) back into frame pixels; zero outside the crop."""
    height, width = frame_shape[:2]
    return cv2.warpAffine(
        crop, matrix, (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
    )


def fit_template(shapes: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Generalised Procrustes analysis: the mean 68-point shape of [K, 68, 2] landmark sets.

    Each shape is aligned to the running mean by a similarity fitted on the inner points.
    The mean is then levelled on the eye line and averaged with its mirror image, so the
    template is exactly left-right symmetric, and normalised like TEMPLATE_68.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    mean = _normalise(shapes[0])
    for _ in range(iterations):
        aligned = np.stack(
            [transform_points(umeyama(s[INNER], mean[INNER]), s) for s in shapes]
        )
        new_mean = _normalise(aligned.mean(axis=0))
        if np.abs(new_mean - mean).max() < 1e-9:
            break
        mean = new_mean
    left, right = eye_centres(mean)
    angle = np.arctan2(right[1] - left[1], right[0] - left[0])
    cos, sin = np.cos(-angle), np.sin(-angle)
    level = mean @ np.array([[cos, sin], [-sin, cos]])
    mirror = level[MIRROR] * np.array([-1.0, 1.0])
    mirror[:, 0] += level[INNER, 0].max() + level[INNER, 0].min()
    return _normalise((level + mirror) / 2.0)


def _normalise(shape: np.ndarray) -> np.ndarray:
    inner = shape[INNER]
    low, high = inner.min(axis=0), inner.max(axis=0)
    span = (high - low).max()
    return (shape - (low + high) / 2.0) / span + 0.5


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the left-in-image and right-in-image eyes."""
    return landmarks[LEFT_EYE].mean(axis=0), landmarks[RIGHT_EYE].mean(axis=0)


# The canonical 68-point face, (x, y), normalised so that the 51 inner points span [0, 1] on
# their longer axis and are centred at (0.5, 0.5). Made by `tools/make_template` (run it to
# reproduce these numbers): dlib's 68-point predictor on every 4th frame of the four sample
# clips identity_a, identity_b, extra_man_hoodie and extra_man_glasses (2 women, 2 men, 458
# faces, many with strong expressions), then `fit_template` (Procrustes, levelled, symmetric).
# Changing it changes every aligned crop, so alignments files record its name.
TEMPLATE_NAME = "faceswap_tf-68-v1"
TEMPLATE_68 = np.array([
    [-0.0952, 0.2536], [-0.0860, 0.4200], [-0.0586, 0.5845], [-0.0233, 0.7439],
    [0.0301, 0.8942], [0.1156, 1.0279], [0.2249, 1.1395], [0.3537, 1.2226],
    [0.5000, 1.2508], [0.6463, 1.2226], [0.7751, 1.1395], [0.8844, 1.0279],
    [0.9699, 0.8942], [1.0233, 0.7439], [1.0586, 0.5845], [1.0860, 0.4200],
    [1.0952, 0.2536], [0.0000, 0.1030], [0.0741, 0.0255], [0.1838, 0.0016],
    [0.2968, 0.0181], [0.4009, 0.0649], [0.5991, 0.0649], [0.7032, 0.0181],
    [0.8162, 0.0016], [0.9259, 0.0255], [1.0000, 0.1030], [0.5000, 0.2032],
    [0.5000, 0.3143], [0.5000, 0.4236], [0.5000, 0.5353], [0.3895, 0.6214],
    [0.4423, 0.6426], [0.5000, 0.6585], [0.5577, 0.6426], [0.6105, 0.6214],
    [0.1230, 0.2269], [0.1899, 0.1854], [0.2715, 0.1876], [0.3432, 0.2430],
    [0.2671, 0.2578], [0.1847, 0.2569], [0.6568, 0.2430], [0.7285, 0.1876],
    [0.8101, 0.1854], [0.8770, 0.2269], [0.8153, 0.2569], [0.7329, 0.2578],
    [0.2886, 0.8666], [0.3624, 0.8022], [0.4429, 0.7707], [0.5000, 0.7860],
    [0.5571, 0.7707], [0.6376, 0.8022], [0.7114, 0.8666], [0.6411, 0.9553],
    [0.5631, 0.9925], [0.5000, 0.9984], [0.4369, 0.9925], [0.3589, 0.9553],
    [0.3248, 0.8665], [0.4424, 0.8313], [0.5000, 0.8354], [0.5576, 0.8313],
    [0.6752, 0.8665], [0.5591, 0.9055], [0.5000, 0.9129], [0.4409, 0.9055],
], dtype=np.float64)
