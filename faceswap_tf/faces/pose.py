"""Head pose from the 68 landmarks: a generic rigid head fitted with `cv2.solvePnP`.

A cheap stand-in for the learned pose estimators of the face-swap literature (Hopenet and
its successors): it needs no model file, and its error is what one expects of 2D landmarks
on an average head, a few degrees. It is meant for comparing two faces in the same frame
(a swap against its original), where the head model's own bias largely cancels.

Only landmarks that stay put when the face moves are fitted: the nose (bridge, tip, base)
and the eye corners. Brows, lips and the jaw line move with the expression, and the jaw
line's points slide along the cheek's outline when the head turns.
"""

import cv2
import numpy as np

# An average adult head in millimetres, from anthropometric proportions: origin at the nose
# tip, x towards the image's right, y down, z away from the camera (OpenCV's camera axes),
# so a face looking into the camera has no rotation. Keys are dlib's 68-point indices.
HEAD_MODEL = {
    27: (0.0, -48.0, 24.0),  # nasion
    28: (0.0, -32.0, 16.0),
    29: (0.0, -16.0, 8.0),
    30: (0.0, 0.0, 0.0),  # nose tip
    31: (-16.0, 7.0, 22.0),  # alar base
    33: (0.0, 11.0, 14.0),  # subnasale
    35: (16.0, 7.0, 22.0),
    36: (-46.0, -38.0, 40.0),  # outer eye corner
    39: (-16.0, -38.0, 30.0),  # inner eye corner
    42: (16.0, -38.0, 30.0),
    45: (46.0, -38.0, 40.0),
}
_INDICES = np.array(list(HEAD_MODEL))
_POINTS = np.array(list(HEAD_MODEL.values()), dtype=np.float64)
AXES = ("yaw", "pitch", "roll")


def camera_matrix(width: int, height: int) -> np.ndarray:
    """A pinhole camera with a focal length of the frame's longer side (a 53 degree field of
    view, typical of phones and webcams) and the principal point in the centre."""
    focal = float(max(width, height))
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def head_pose(landmarks: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """[yaw, pitch, roll] in degrees of a face's 68 landmarks in a frame of (width, height).

    yaw turns the head left and right (about the camera's y axis), pitch nods it (x axis),
    roll tilts it in the image plane (z axis); 0, 0, 0 looks straight into the camera. Angles
    are the R = Rz(roll) Ry(yaw) Rx(pitch) decomposition of the head's rotation."""
    width, height = frame_size
    camera = camera_matrix(width, height)
    image_points = np.asarray(landmarks, dtype=np.float64)[_INDICES]
    # Start from a frontal head at the distance its eye span implies: the iterative solver
    # then cannot settle on the mirrored solution behind the camera.
    span = np.linalg.norm(image_points[-1] - image_points[-4])
    distance = camera[0, 0] * (_POINTS[-1, 0] - _POINTS[-4, 0]) / max(span, 1.0)
    centre = image_points[3]
    translation = np.array([[(centre[0] - camera[0, 2]) * distance / camera[0, 0]],
                            [(centre[1] - camera[1, 2]) * distance / camera[1, 1]],
                            [distance]])
    rotation = np.zeros((3, 1))
    ok, rotation, translation = cv2.solvePnP(_POINTS, image_points, camera, None, rotation, translation,
                                             useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full(3, np.nan)
    matrix, _ = cv2.Rodrigues(rotation)
    yaw = np.arcsin(np.clip(-matrix[2, 0], -1.0, 1.0))
    pitch = np.arctan2(matrix[2, 1], matrix[2, 2])
    roll = np.arctan2(matrix[1, 0], matrix[0, 0])
    return np.degrees([yaw, pitch, roll])


def rotation(angles: np.ndarray) -> np.ndarray:
    """The 3x3 rotation Rz(roll) Ry(yaw) Rx(pitch) of [yaw, pitch, roll] in degrees."""
    yaw, pitch, roll = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation_between(a: np.ndarray, b: np.ndarray) -> float:
    """The angle in degrees of the rotation taking head pose `a` to `b` ([yaw, pitch, roll])."""
    vector, _ = cv2.Rodrigues(rotation(a).T @ rotation(b))  # precise near 0, unlike arccos of the trace
    return float(np.degrees(np.linalg.norm(vector)))


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-axis absolute difference of two [yaw, pitch, roll] in degrees, wrapped to [0, 180]."""
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)
