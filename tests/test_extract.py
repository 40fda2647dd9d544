"""The extract stage end to end, as a user runs it, on the real sample data."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import imageio.v3 as iio
import imageio_ffmpeg
import pytest

from faceswap_tf import data
from faceswap_tf.errors import UserError
from faceswap_tf.faces import alignments
from faceswap_tf.framing import Framing
from tests.conftest import ROOT, data_path, run_module
from tests.test_run_record import snapshot


def extract(*args):
    return run_module("faceswap_tf.extract", *args)


def assert_one_clear_error(result, name):
    assert result.returncode == 2, result.stderr
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
    assert result.returncode == 1 and "frobnicate" in result.stderr  # absl's usage error
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


# An extract killed (SIGKILL: no clean-up runs) at a chosen point of its commit.
KILLED_EXTRACT = r"""
import os, signal, sys
from faceswap_tf import extractor
from faceswap_tf.faces import alignments
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "before-alignments":
    alignments.save = lambda *args, **kwargs: die()
else:  # after the alignments, with one crop moved into place
    place = extractor._place
    def place_one(staging, folder, names):
        if names:
            place(staging, folder, names[:1])
            die()
    extractor._place = place_one
sys.argv = ["extract", *sys.argv[2:]]
from faceswap_tf import extract
extract.run()
"""


def extract_alone(*args, script=None, file_size_limit=None):
    """Runs extract (or `script`) in a process group of its own; checks that no process of the
    group outlives it (an orphaned helper, a zombie nobody reaps)."""
    def limit():
        if file_size_limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))

    command = [sys.executable, "-c", script] if script else [sys.executable, "-m", "faceswap_tf.extract"]
    process = subprocess.Popen([*command, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, preexec_fn=limit)
    stdout, stderr = process.communicate(timeout=300)
    if process.returncode != -signal.SIGKILL:
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def two_images(data_dir, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("two_people.jpg", "obama2.jpg"):
        shutil.copy(data_path(data_dir, "images", "faces", name), folder)
    return folder


def readable(folder):
    """Every crop alignments.json records, read as training reads them (UserError if not)."""
    records = alignments.load(str(folder / alignments.FILE_NAME))
    return [data.read_crop(str(folder), record) for record in records]


def test_a_re_extract_that_cannot_write_its_alignments_changes_nothing(two_images, tmp_path):
    out = tmp_path / "out"
    common = [f"--input={two_images}", f"--output_dir={out}", "--size=16", "--workers=1"]
    assert extract_alone(*common).returncode == 0
    before = snapshot(out)
    assert len(readable(out)) == 3
    # Again keeping only the largest face (one crop to delete), under a file size limit
    # (ulimit -f) that the small crops pass and the new alignments file does not.
    result = extract_alone(*common, "--largest_face", file_size_limit=4096)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {out}/alignments.json: cannot write it (File too large); nothing was changed: the faces "
        "extracted before are all still there")
    assert snapshot(out) == before
    assert len(readable(out)) == 3


def test_a_killed_re_extract_with_other_settings_never_leaves_crops_their_records_do_not_describe(
        two_images, data_dir, tmp_path):
    out = tmp_path / "out"
    common = [f"--input={two_images}", f"--output_dir={out}", "--size=16", "--workers=1"]
    assert extract_alone(*common).returncode == 0
    files_before = {name: digest for name, digest in snapshot(out).items()}
    killed = extract_alone("before-alignments", *common, "--padding=0.3", script=KILLED_EXTRACT)
    assert killed.returncode == -signal.SIGKILL
    # Killed before its commit: the folder is as it was, besides the hidden staging folder.
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".extract-")} == files_before
    assert {r.padding for r in alignments.load(str(out / "alignments.json"))} == {0.2}
    assert len(readable(out)) == 3

    killed = extract_alone("after-alignments", *common, "--padding=0.3", script=KILLED_EXTRACT)
    assert killed.returncode == -signal.SIGKILL
    # Killed between its alignments (padding 0.3) and its crops: training refuses, naming a crop.
    records = alignments.load(str(out / "alignments.json"))
    assert {r.padding for r in records} == {0.3}
    with pytest.raises(UserError, match=r"\.png: not the crop .*alignments.json records .*extract .* again"):
        data.load_faces(str(out), Framing(16, 0.3, 0.85, 64), 0.0)
    # The next extract into the folder (here of another image) finishes the interrupted one.
    other = data_path(data_dir, "images", "faces", "kit_with_rose.jpg")
    done = extract_alone(f"--input={other}", *common[1:], "--padding=0.3")
    assert done.returncode == 0, done.stderr
    assert f"note: {out}: moved 2 crops of an interrupted extract into place" in done.stderr
    assert len(readable(out)) == 5 and not [f for f in os.listdir(out) if f.startswith(".")]

    # A crop changed by anything else: extract says so for the sources it keeps, train refuses.
    obama = next(r for r in alignments.load(str(out / "alignments.json")) if "obama2" in r.file)
    shutil.copy(out / next(r.file for r in records if "two_people" in r.file), out / obama.file)
    again = extract_alone(f"--input={other}", *common[1:], "--padding=0.3")
    assert again.returncode == 0, again.stderr
    assert (f"warning: {out}: 1 of the crops of {obama.source} are missing or not those alignments.json "
            f"records (first {obama.file}); extract it again") in again.stderr
    with pytest.raises(UserError, match=f"{out}/{obama.file}: not the crop"):
        readable(out)
