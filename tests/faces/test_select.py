"""One face selector for extract and convert: the reference person first, then the largest."""

import io

import cv2
import numpy as np
import pytest

from faceswap_tf import extractor, media
from faceswap_tf.convert import converter
from faceswap_tf.faces import alignments, detect, identity
from faceswap_tf.faces.select import FaceSelector
from tests.conftest import data_path


@pytest.fixture(scope="module")
def two_people(data_dir):
    image = media.read_image(data_path(data_dir, "images", "faces", "two_people.jpg"))
    detector = detect.FaceDetector(detect.DetectorConfig(min_face_size=40))
    faces = detector(image)
    assert len(faces) == 2 and faces[0].size > faces[1].size
    return image, faces


@pytest.fixture(scope="module")
def smaller_man(two_people, tmp_path_factory):
    """A reference photo of the man with the smaller face: his part of the picture."""
    image, faces = two_people
    left, top, right, bottom = faces[1].box
    margin = (right - left) // 2
    part = image[max(0, top - margin):bottom + margin, max(0, left - margin):right + margin]
    path = tmp_path_factory.mktemp("reference") / "him.png"
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(part), cv2.COLOR_RGB2BGR))
    return str(path)


class CountingDescriber(identity.FaceDescriber):
    calls = 0

    def __call__(self, frame, face):
        CountingDescriber.calls += 1
        return super().__call__(frame, face)


def test_the_largest_face_of_the_reference_person_not_the_largest_face(two_people):
    image, faces = two_people
    describer = CountingDescriber()
    reference = describer(image, faces[1])
    assert FaceSelector()(image, faces).chosen == [0, 1]
    assert FaceSelector(largest=True)(image, faces).chosen == [0]
    chosen = FaceSelector(largest=True, reference=reference, describer=describer)(image, faces)
    assert chosen.chosen == [1] and chosen.rejected == 1
    # Tracked faces are checked again only every few frames.
    selector = FaceSelector(reference=reference, describer=describer)
    CountingDescriber.calls = 0
    for index in range(4):
        assert selector(image, faces, keys=["t0", "t1"], index=index).chosen == [1]
    assert CountingDescriber.calls == 2


def test_extract_and_convert_choose_the_same_face(two_people, smaller_man, smoke_export, tmp_path, data_dir):
    image, faces = two_people
    photo = data_path(data_dir, "images", "faces", "two_people.jpg")
    summary = extractor.run(extractor.ExtractConfig(
        input=photo, output_dir=str(tmp_path / "faces"), largest_face=True, reference=smaller_man,
        detector=detect.DetectorConfig(min_face_size=40)), log=io.StringIO())
    (record,) = alignments.load(str(tmp_path / "faces" / alignments.FILE_NAME))
    assert summary.faces == 1 and summary.faces_rejected == 1
    assert detect.iou(record.box, faces[1].box) > 0.9
    swapped = converter.run(converter.ConvertConfig(
        input=photo, output=str(tmp_path / "out.png"), model=f"{smoke_export}/smoke", faces="largest",
        reference=smaller_man, detector=detect.DetectorConfig(min_face_size=40)), log=io.StringIO())
    assert swapped.faces == 1
    out = media.read_image(str(tmp_path / "out.png"))
    changed = [np.abs(out[t:b, lft:r].astype(int) - image[t:b, lft:r]).mean() for lft, t, r, b in
               (face.box for face in faces)]
    assert changed[1] > 2.0 and changed[0] < 0.5, changed
