"""The extract stage end to end, as a user runs it, on the real sample data."""

import json
import os
import shutil
import subprocess

import imageio.v3 as iio
import imageio_ffmpeg
import pytest

from faceswap_tf.faces import alignments
from tests.conftest import data_path, run_module


def extract(*args):
    return run_module("faceswap_tf.extract", *args)


def assert_one_clear_error(result, name):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0], result.stderr


def test_missing_path(tmp_path):
    result = extract("--input=/no/such/clip.mp4", f"--output_dir={tmp_path / 'out'}")
    assert_one_clear_error(result, "/no/such/clip.mp4")
    assert "no such file" in result.stderr


def test_empty_file_and_text_named_mp4(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    for path, problem in [(empty, "the file is empty"), (text, "cannot read the video")]:
        out = tmp_path / f"out_{path.stem}"
        result = extract(f"--input={path}", f"--output_dir={out}")
        assert_one_clear_error(result, str(path))
        assert problem in result.stderr
        assert not (out / "alignments.json").exists()


def test_unknown_flag_is_an_error(tmp_path):
    result = extract("--input=x.mp4", f"--output_dir={tmp_path}", "--frobnicate=1")
    assert result.returncode != 0 and "frobnicate" in result.stderr
    assert "Traceback" not in result.stderr


BAD_IMAGES = ["dog.jpg", "cat.jpg", "grass.jpg", "scream.jpg", "pil_sample_cmyk.jpg",
              "tRNS_null_1x1.png", "truncated_jpeg.jpg", "broken.png", "zero_width.gif"]


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_each_bad_image_is_one_clear_error(data_dir, tmp_path, name):
    path = data_path(data_dir, "images", "bad", name)
    result = extract(f"--input={path}", f"--output_dir={tmp_path / 'out'}")
    assert_one_clear_error(result, name)
    assert not (tmp_path / "out" / "alignments.json").exists()


def test_a_folder_of_bad_files_reports_each_and_fails(data_dir, tmp_path):
    folder = data_path(data_dir, "images", "bad")
    result = extract(f"--input={folder}", f"--output_dir={tmp_path / 'out'}")
    assert_one_clear_error(result, folder)
    # The undecodable ones are named on their own "skipped:" lines and counted.
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    for name in ("broken.png", "zero_width.gif"):
        assert any(name in line for line in skipped), result.stderr
    assert f"{len(skipped)} unreadable" in result.stderr


def test_a_video_without_faces(data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "no_faces_crowd.mp4")
    result = extract(f"--input={clip}", f"--output_dir={tmp_path / 'out'}", "--every_nth=4")
    assert_one_clear_error(result, "no_faces_crowd.mp4")
    assert "no usable face" in result.stderr
    assert not (tmp_path / "out" / "alignments.json").exists()


def test_a_mixed_folder_skips_bad_files_and_succeeds(data_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for part in [("faces", "two_people.jpg"), ("faces", "hopper_orientation_6.jpg"),
                 ("bad", "broken.png"), ("bad", "dog.jpg")]:
        shutil.copy(data_path(data_dir, "images", *part), folder)
    out = tmp_path / "out"
    result = extract(f"--input={folder}", f"--output_dir={out}", "--min_face_size=40")
    assert result.returncode == 0, result.stderr
    assert "skipped:" in result.stderr and "broken.png" in result.stderr
    # Three readable images, two with faces (two people + hopper, not the dog); on stderr.
    assert "frames: 3  with a face: 2  faces written: 3" in result.stderr and not result.stdout
    faces = alignments.load(str(out / "alignments.json"))
    assert len(faces) == 3
    for face in faces:
        crop = iio.imread(out / face.file)
        assert crop.shape == (256, 256, 3)


def test_rerunning_does_not_duplicate_and_keeps_other_sources(data_dir, tmp_path):
    out = tmp_path / "out"
    two = data_path(data_dir, "images", "faces", "two_people.jpg")
    kit = data_path(data_dir, "images", "faces", "kit_with_rose.jpg")
    assert extract(f"--input={two}", f"--output_dir={out}").returncode == 0
    assert extract(f"--input={kit}", f"--output_dir={out}").returncode == 0
    first = alignments.load(str(out / "alignments.json"))
    files = sorted(os.listdir(out))
    # Again, now keeping only the largest face: two_people's second crop must go.
    assert extract(f"--input={two}", f"--output_dir={out}", "--largest_face").returncode == 0
    second = alignments.load(str(out / "alignments.json"))
    assert len({f.key for f in second}) == len(second)
    by_source = {s: [f for f in second if f.source == s] for s in {f.source for f in second}}
    assert len(by_source[os.path.abspath(two)]) == 1
    assert len(by_source[os.path.abspath(kit)]) == len([f for f in first if f.source == os.path.abspath(kit)])
    assert sorted(os.listdir(out)) == sorted(set(files) - {"two_people_000000_1.png"})


def test_same_stem_from_two_folders_is_refused(data_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(data_path(data_dir, "images", "faces", "obama2.jpg"), other / "two_people.jpg")
    out = tmp_path / "out"
    assert extract(f"--input={data_path(data_dir, 'images', 'faces', 'two_people.jpg')}",
                   f"--output_dir={out}").returncode == 0
    result = extract(f"--input={other / 'two_people.jpg'}", f"--output_dir={out}")
    assert_one_clear_error(result, "two_people.jpg")
    assert "share names" in result.stderr


def test_an_alignments_file_damaged_by_hand_is_refused_untouched(data_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "alignments.json").write_text('{"format": "faceswap_tf.alignments", "version": 1}')
    image = data_path(data_dir, "images", "faces", "two_people.jpg")
    result = extract(f"--input={image}", f"--output_dir={out}")
    assert_one_clear_error(result, "alignments.json")
    assert json.loads((out / "alignments.json").read_text())["version"] == 1


def test_a_truncated_video_keeps_what_decodes_and_says_so(data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "identity_a.mp4")
    remuxed = tmp_path / "a.mkv"  # Matroska announces its length up front, unlike this mp4
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", clip, "-c", "copy",
                    str(remuxed)], check=True)
    half = tmp_path / "half.mkv"
    data = remuxed.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = extract(f"--input={half}", f"--output_dir={out}", "--every_nth=2")
    assert result.returncode == 0, result.stderr
    assert "truncated?" in result.stderr and "half.mkv" in result.stderr
    faces = alignments.load(str(out / "alignments.json"))
    assert 60 < len(faces) < 120  # about half of 177 frames
