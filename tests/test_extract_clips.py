"""The extract stage on the real clips: coverage, alignment consistency, face selection."""

import io
import os

import imageio.v3 as iio
import pytest

from faceswap_tf import extractor, media
from faceswap_tf.faces import alignments, detect, quality
from tests.conftest import data_path


def run_extract(tmp_path_factory, data_dir, clip, **options):
    out = tmp_path_factory.mktemp(os.path.splitext(clip)[0])
    config = extractor.ExtractConfig(
        input=data_path(data_dir, "clips", clip), output_dir=str(out), **options
    )
    summary = extractor.run(config, log=io.StringIO())
    return summary, alignments.load(str(out / alignments.FILE_NAME)), out


@pytest.fixture(scope="module", params=["identity_a.mp4", "identity_b.mp4"])
def identity_clip(request, tmp_path_factory, data_dir):
    return run_extract(tmp_path_factory, data_dir, request.param)


def test_a_face_in_at_least_99_percent_of_frames(identity_clip, data_dir):
    summary, faces, _ = identity_clip
    source = faces[0].source
    frames_in_clip = sum(1 for _ in media.iter_video(source))
    assert summary.frames == frames_in_clip
    frames_with_face = len({f.frame for f in faces})
    assert frames_with_face >= 0.99 * frames_in_clip, (frames_with_face, frames_in_clip)


def test_aligned_crops_are_consistent(identity_clip):
    """dlib's predictor run again on the aligned crops finds the eyes in the same place."""
    _, faces, out = identity_clip
    result = quality.alignment_consistency(faces[::3], str(out), detect.FaceDetector(detect.DetectorConfig()))
    assert result.eye_spread < 0.02, result
    assert result.eye_tilt < 2.0, result
    # And the eyes sit where the template puts them.
    assert result.eye_offset < 0.02, result


def test_the_crop_files_match_the_alignments(identity_clip):
    _, faces, out = identity_clip
    names = {f.file for f in faces}
    assert names == {n for n in os.listdir(out) if n.endswith(".png")}
    assert not [n for n in os.listdir(out) if ".tmp" in n]


@pytest.fixture(scope="module")
def stage_frames(tmp_path_factory, data_dir):
    """Frames of the stage clip as images: the performer (120, 160, 200) and the audience
    (240, 260), where several people face the camera."""
    clip = data_path(data_dir, "clips", "multi_face_stage.mp4")
    folder = tmp_path_factory.mktemp("stage")
    for index in (120, 200, 240, 260):
        iio.imwrite(folder / f"frame_{index}.png", iio.imread(clip, index=index))
    reference = tmp_path_factory.mktemp("reference") / "performer.png"
    iio.imwrite(reference, iio.imread(clip, index=160))
    return folder, reference


def faces_per_frame(faces):
    counts = {}
    for face in faces:
        frame = int(os.path.basename(face.source).split("_")[1].split(".")[0])
        counts[frame] = counts.get(frame, 0) + 1
    return counts


def test_several_faces_per_frame_by_default_with_the_cnn_detector(stage_frames, tmp_path):
    folder, _ = stage_frames
    config = extractor.ExtractConfig(
        input=str(folder), output_dir=str(tmp_path),
        detector=detect.DetectorConfig(detector="cnn", min_face_size=50),
    )
    extractor.run(config, log=io.StringIO())
    counts = faces_per_frame(alignments.load(str(tmp_path / alignments.FILE_NAME)))
    assert counts.get(240, 0) >= 3 and counts.get(260, 0) >= 3, counts
    assert counts.get(120) == 1 and counts.get(200) == 1, counts


def test_reference_keeps_only_the_performer(stage_frames, tmp_path):
    folder, reference = stage_frames
    config = extractor.ExtractConfig(
        input=str(folder), output_dir=str(tmp_path), reference=str(reference),
        detector=detect.DetectorConfig(detector="cnn", min_face_size=50),
    )
    summary = extractor.run(config, log=io.StringIO())
    counts = faces_per_frame(alignments.load(str(tmp_path / alignments.FILE_NAME)))
    assert counts == {120: 1, 200: 1}
    assert summary.faces_rejected >= 6


def test_reference_on_the_stage_video_with_the_default_detector(data_dir, tmp_path_factory):
    reference = tmp_path_factory.mktemp("ref") / "performer.png"
    clip = data_path(data_dir, "clips", "multi_face_stage.mp4")
    iio.imwrite(reference, iio.imread(clip, index=160))
    _, everyone, _ = run_extract(tmp_path_factory, data_dir, "multi_face_stage.mp4",
                                 every_nth=3, detector=detect.DetectorConfig(min_face_size=60))
    summary, performer, _ = run_extract(
        tmp_path_factory, data_dir, "multi_face_stage.mp4", every_nth=3,
        reference=str(reference), detector=detect.DetectorConfig(min_face_size=60),
    )
    audience = [f for f in everyone if f.frame >= 235]
    assert audience, "HOG finds no audience face: the test shows nothing"
    assert performer and all(f.frame < 235 for f in performer)
    assert summary.faces_rejected >= len(audience)
