import cv2
import numpy as np
import pytest

from faceswap_tf import media
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align, detect, identity
from tests.conftest import data_path


@pytest.fixture(scope="module")
def detector():
    return detect.FaceDetector(detect.DetectorConfig())


def assert_plausible(face):
    left, top, right, bottom = face.box
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    # Landmarks lie around the box (the jaw may reach a little past it).
    margin = 0.4 * face.size  # HOG boxes end near the upper lip; the chin lies below
    assert (face.landmarks[:, 0] > left - margin).all() and (face.landmarks[:, 0] < right + margin).all()
    assert (face.landmarks[:, 1] > top - margin).all() and (face.landmarks[:, 1] < bottom + margin).all()
    eye_left, eye_right = align.eye_centres(face.landmarks)
    assert eye_left[0] < eye_right[0]  # upright: the left-in-image eye is on the left
    assert eye_left[1] < face.landmarks[57, 1] and eye_right[1] < face.landmarks[57, 1]


def test_two_people_are_both_found_largest_first(data_dir, detector):
    faces = detector(media.read_image(data_path(data_dir, "images", "faces", "two_people.jpg")))
    assert len(faces) == 2
    assert faces[0].size >= faces[1].size
    for face in faces:
        assert_plausible(face)


@pytest.mark.parametrize("name", ["hopper_gray.jpg", "32bit.png", "hopper_orientation_6.jpg",
                                  "obama2.jpg", "biden2.jpg"])
def test_unusual_image_formats_decode_to_rgb_with_an_upright_face(data_dir, name):
    image = media.read_image(data_path(data_dir, "images", "faces", name))
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    # Small portraits (128 px) need a lower minimum face size than the default.
    faces = detect.FaceDetector(detect.DetectorConfig(min_face_size=40))(image)
    assert faces, f"no face in {name}"
    assert_plausible(faces[0])


def test_detection_scale_follows_the_minimum_face_size():
    assert detect.DetectorConfig(min_face_size=80).detect_scale == 1.0
    assert detect.DetectorConfig(min_face_size=160).detect_scale == 0.5
    assert detect.DetectorConfig(min_face_size=40).detect_scale == 2.0
    assert detect.DetectorConfig(detector="cnn", min_face_size=100).detect_scale == 0.5


def test_downscaled_detection_gives_the_same_landmarks(data_dir):
    image = media.read_image(data_path(data_dir, "images", "faces", "biden2.jpg"))
    full = detect.FaceDetector(detect.DetectorConfig(min_face_size=80))(image)[0]
    fast = detect.FaceDetector(detect.DetectorConfig(min_face_size=320))(image)[0]
    # Landmarks are fitted on the full-resolution frame either way; only the box differs.
    ocular = np.linalg.norm(np.subtract(*align.eye_centres(full.landmarks)))
    assert np.abs(full.landmarks - fast.landmarks).mean() < 0.05 * ocular


def test_faces_below_the_minimum_size_are_dropped(data_dir):
    image = media.read_image(data_path(data_dir, "images", "faces", "two_people.jpg"))
    sizes = [f.size for f in detect.FaceDetector(detect.DetectorConfig())(image)]
    assert len(sizes) == 2 and min(sizes) > 100
    assert len(detect.FaceDetector(detect.DetectorConfig(min_face_size=100))(image)) == 2
    assert detect.FaceDetector(detect.DetectorConfig(min_face_size=max(sizes) + 20))(image) == []


def test_unknown_detector_and_missing_model_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--detector=s3fd"):
        detect.DetectorConfig(detector="s3fd")
    missing = str(tmp_path / "nope.dat")
    with pytest.raises(UserError, match="nope.dat: model file not found"):
        detect.FaceDetector(detect.DetectorConfig(landmark_model=missing))
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match="junk.dat: not a usable dlib model file"):
        detect.FaceDetector(detect.DetectorConfig(landmark_model=str(junk)))


def test_descriptors_tell_people_apart(data_dir, detector):
    describer = identity.FaceDescriber()
    two = media.read_image(data_path(data_dir, "images", "faces", "two_people.jpg"))
    obama = media.read_image(data_path(data_dir, "images", "faces", "obama2.jpg"))
    obama_32bit = media.read_image(data_path(data_dir, "images", "faces", "32bit.png"))
    a, b = [describer(two, face) for face in detector(two)]
    same = identity.distance(describer(obama, detector(obama)[0]),
                             describer(obama_32bit, detector(obama_32bit)[0]))
    assert same < 0.1  # the same photo, as RGBA PNG
    assert identity.distance(a, b) > identity.DEFAULT_MATCH_DISTANCE


def test_the_tracker_finds_the_same_faces_with_fewer_whole_frame_detections(data_dir, detector):
    clip = data_path(data_dir, "clips", "identity_b.mp4")
    frames = [frame for _, frame in zip(range(24), media.iter_video(clip), strict=False)]
    whole_frame = []

    class Counting(detect.FaceDetector):
        def __call__(self, frame, timings=None):
            whole_frame.append(True)
            return super().__call__(frame, timings)

    tracker = detect.FaceTracker(Counting(detector.config), keyframe_interval=8)
    for frame in frames:
        tracked = tracker(frame)
        full = detector(frame)
        assert len(tracked) == len(full) == 1
        ocular = np.linalg.norm(np.subtract(*align.eye_centres(full[0].landmarks)))
        assert np.abs(tracked[0].landmarks - full[0].landmarks).mean() < 0.05 * ocular
    assert len(whole_frame) == 3  # frames 0, 8 and 16


def test_the_tracker_looks_everywhere_again_when_a_face_is_lost(data_dir, detector):
    face = media.read_image(data_path(data_dir, "images", "faces", "biden2.jpg"))
    dog = cv2.resize(media.read_image(data_path(data_dir, "images", "bad", "dog.jpg")),
                     face.shape[1::-1])
    moved = np.roll(face, (0, 300), axis=(0, 1))  # a cut: the face is elsewhere
    tracker = detect.FaceTracker(detector, keyframe_interval=100)
    first = tracker(face)
    assert len(first) == 1
    assert tracker(dog) == []
    again = tracker(moved)
    assert len(again) == 1 and again[0].box[0] - first[0].box[0] == pytest.approx(300, abs=10)
