"""Head pose from landmarks: exact on a projected head, consistent on real footage."""

import cv2
import numpy as np
import pytest

from faceswap_tf import media
from faceswap_tf.faces import detect, pose
from tests.conftest import data_path


def rotation(yaw, pitch, roll):
    """R = Rz(roll) Ry(yaw) Rx(pitch), angles in degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, -10, 5), (-30, 15, -12), (10, 20, 30)])
def test_a_projected_head_gives_back_its_angles(angles):
    size = (640, 480)
    indices = list(pose.HEAD_MODEL)
    points = np.array(list(pose.HEAD_MODEL.values()))
    vector, _ = cv2.Rodrigues(rotation(*angles))
    projected, _ = cv2.projectPoints(points, vector, np.array([20.0, -10.0, 600.0]),
                                     pose.camera_matrix(*size), None)
    landmarks = np.zeros((68, 2))
    landmarks[indices] = projected[:, 0]
    np.testing.assert_allclose(pose.head_pose(landmarks, size), angles, atol=0.01)


def test_rotation_between_two_poses_is_the_angle_of_the_turn_between_them():
    assert pose.rotation_between([10, -5, 3], [10, -5, 3]) == 0.0
    assert abs(pose.rotation_between([0, 0, 0], [30, 0, 0]) - 30) < 1e-9
    assert abs(pose.rotation_between([20, 0, 0], [0, 0, 20]) - 28.0) < 0.5  # two 20 degree turns
    turn = pose.rotation([25, -10, 5]) @ pose.rotation([0, 0, 0])
    np.testing.assert_allclose(turn, rotation(25, -10, 5), atol=1e-12)


def test_angle_difference_wraps_around():
    np.testing.assert_allclose(pose.angle_difference([179, -5, 0], [-179, 5, 90]), [2, 10, 90])


@pytest.fixture(scope="module")
def faces(data_dir):
    """Every 40th frame of identity_a and its largest face."""
    detector = detect.FaceDetector(detect.DetectorConfig())
    frames = list(media.iter_video(data_path(data_dir, "clips", "identity_a.mp4")))[::40]
    return [(frame, detector(frame)[0]) for frame in frames], detector


def test_a_mirrored_frame_mirrors_yaw_and_roll(faces):
    found, detector = faces
    errors = []
    for frame, face in found:
        size = (frame.shape[1], frame.shape[0])
        mirrored = detector(np.ascontiguousarray(frame[:, ::-1]))[0]
        original, flipped = pose.head_pose(face.landmarks, size), pose.head_pose(mirrored.landmarks, size)
        errors.append([original[0] + flipped[0], original[1] - flipped[1], original[2] + flipped[2]])
    errors = np.abs(errors)
    # The detector's landmarks are not exactly mirror-symmetric: measured 0.9, 0.9, 0.3 mean.
    assert errors.mean(axis=0).max() < 1.5, errors
    assert (errors.max(axis=0) < [3.0, 4.0, 1.5]).all(), errors


def test_rotating_the_frame_rolls_the_head_by_the_same_angle(faces):
    found, detector = faces
    rolls = []
    for frame, face in found:
        height, width = frame.shape[:2]
        nose = face.landmarks[30]
        # +15 degrees is anticlockwise on screen, which with y pointing down is a roll of -15.
        turn = cv2.getRotationMatrix2D((float(nose[0]), float(nose[1])), 15.0, 1.0)
        turned = detector(cv2.warpAffine(frame, turn, (width, height)))[0]
        rolls.append(pose.head_pose(turned.landmarks, (width, height))[2]
                     - pose.head_pose(face.landmarks, (width, height))[2])
    assert np.abs(np.array(rolls) + 15.0).max() < 2.0, rolls
