import json
import os

import numpy as np
import pytest

from faceswap_tf import files
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align, alignments


def record(frame=0, face=0, source="/videos/a.mp4"):
    landmarks = align.transform_points(np.array([[200.0, 0, 50], [0, 200.0, 30]]), align.TEMPLATE_68)
    return alignments.FaceRecord(
        source=source, frame=frame, face=face, box=(40, 20, 260, 250),
        landmarks=landmarks, matrix=align.alignment_matrix(landmarks, 256, 0.2),
        size=256, padding=0.2, file=f"a_{frame:06d}_{face}.png",
    )


def test_round_trip_keeps_every_field(tmp_path):
    path = str(tmp_path / "alignments.json")
    faces = [record(3, 1), record(3, 0), record(0, 0)]
    alignments.save(path, faces)
    loaded = alignments.load(path)
    assert [f.key for f in loaded] == sorted(f.key for f in faces)
    original = {f.key: f for f in faces}
    for face in loaded:
        want = original[face.key]
        assert (face.box, face.size, face.padding, face.file) == (want.box, want.size, want.padding, want.file)
        np.testing.assert_allclose(face.landmarks, want.landmarks, atol=0.005)
        np.testing.assert_allclose(face.matrix, want.matrix, atol=1e-12)
        np.testing.assert_allclose(face.crop_landmarks(), align.template_points(256, 0.2), atol=0.01)
    document = json.loads(open(path).read())
    assert document["format"] == "faceswap_tf.alignments" and document["version"] == 1
    assert document["template"] == align.TEMPLATE_NAME


def write_bad(tmp_path, mutate):
    path = str(tmp_path / "alignments.json")
    alignments.save(path, [record()])
    document = json.load(open(path))
    mutate(document)
    with open(path, "w") as out:
        json.dump(document, out)
    return path


@pytest.mark.parametrize("field,mutate", [
    ("format", lambda d: d.update(format="other")),
    ("version", lambda d: d.update(version=99)),
    ("template", lambda d: d.update(template="someone-else")),
    ("faces", lambda d: d.update(faces={"a": 1})),
    ("faces[0].landmarks", lambda d: d["faces"][0]["landmarks"].pop()),
    ("faces[0].landmarks", lambda d: d["faces"][0].pop("landmarks")),
    ("faces[0].matrix", lambda d: d["faces"][0].update(matrix=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])),
    ("faces[0].frame", lambda d: d["faces"][0].update(frame=-1)),
    ("faces[0].frame", lambda d: d["faces"][0].update(frame="12")),
    ("faces[0].box", lambda d: d["faces"][0].update(box=[1, 2, 3])),
    ("faces[0].file", lambda d: d["faces"][0].update(file="../../etc/passwd")),
    ("faces[0].size", lambda d: d["faces"][0].update(size=True)),
    ("faces[0].padding", lambda d: d["faces"][0].update(padding=0.7)),
    ("faces[0].source", lambda d: d["faces"][0].update(source="")),
    ("faces[0].sha256", lambda d: d["faces"][0].update(sha256="not a digest")),
])
def test_malformed_files_are_rejected_naming_the_field(tmp_path, field, mutate):
    path = write_bad(tmp_path, mutate)
    with pytest.raises(UserError) as err:
        alignments.load(path)
    assert path in str(err.value) and f"field {field}:" in str(err.value)


def test_nan_landmarks_are_rejected(tmp_path):
    path = str(tmp_path / "alignments.json")
    alignments.save(path, [record()])
    document = json.load(open(path))
    document["faces"][0]["landmarks"][0][0] = float("nan")
    with open(path, "w") as out:
        json.dump(document, out)
    with pytest.raises(UserError, match="faces\\[0\\].landmarks"):
        alignments.load(path)


@pytest.mark.parametrize("content,problem", [
    (b"", "not valid JSON"), (b"\x89PNG\r\n", "not valid JSON"), (b"[1, 2]", "top level"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deep"),
])
def test_files_that_are_not_alignments_give_one_clear_error(tmp_path, content, problem):
    path = tmp_path / "alignments.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=problem):
        alignments.load(str(path))


def test_a_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = str(tmp_path / "alignments.json")
    alignments.save(path, [record(0)])
    before = open(path).read()

    def disk_full(*args, **kwargs):  # fails once the temporary file is written, before the rename
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError):
        alignments.save(path, [record(0), record(1)])
    assert open(path).read() == before
    assert os.listdir(tmp_path) == ["alignments.json"]
