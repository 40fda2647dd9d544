"""The evaluate stage on real footage: what the eye sees, against controls that must fail."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from faceswap_tf import evaluator, media, run_record
from faceswap_tf.convert import converter, video
from faceswap_tf.errors import UserError
from faceswap_tf.faces import coverage, detect, masks
from tests.conftest import data_path, run_module


def evaluate(face_dirs, original, swapped, output_dir, **options):
    config = evaluator.EvaluateConfig(original=original, swapped=swapped, faces_a=face_dirs["a"],
                                      faces_b=face_dirs["b"], output_dir=str(output_dir), gallery_size=10,
                                      **options)
    log = io.StringIO()
    return evaluator.run(config, log=log), config, log.getvalue()


def passes(report, column):
    return {row["key"]: row[f"{column}_passes"] for row in report["verdict"]}


@pytest.fixture(scope="module")
def unmodified_report(face_dirs, data_dir, smoke_model, tmp_path_factory):
    """identity_a's held-out end, re-encoded, with a distractor clip and photo beside the pair;
    with the smoke model's run, so that its framing gives the ceiling control (64 px)."""
    folder = tmp_path_factory.mktemp("unmodified")
    clip = data_path(data_dir, "clips", "identity_a.mp4")
    copy = str(folder / "copy.mp4")
    writer = video.VideoWriter(copy, (512, 512), 30.0)  # as the converter writes: not bit-identical
    for index, frame in enumerate(media.iter_video(clip)):
        if index >= 284:
            writer.write(frame)
    writer.close()
    distractors = (data_path(data_dir, "clips", "extra_man_hoodie.mp4"),
                   data_path(data_dir, "images", "faces", "biden2.jpg"))
    report, config, log = evaluate(face_dirs, clip, copy, folder / "out", max_frames=50,
                                   distractors=distractors, model_dir=smoke_model)
    return report, config, log


def test_an_unmodified_video_meets_every_band_but_identity(unmodified_report):
    report, _, _ = unmodified_report
    assert report["inputs"]["first_frame"] == 284 and report["inputs"]["frames"] == 50
    assert report["verdict_on"] == "held_out" and report["summary"]["training"]["frames"] == 0
    for column in ("swapped", "unmodified"):  # the re-encoded copy, and the JPEG round trip
        verdict = passes(report, column)
        assert verdict.pop("identity") is False, column  # it is A, not B
        assert verdict.pop("feature_similarity") is False, column  # A's own eyes and mouth: no swap
        assert all(verdict.values()), (column, report["verdict"])
    swapped = report["summary"]["held_out"]["swapped"]
    assert swapped["nearest"] == {"A": 50}  # not B, not the distractors
    # The pose error is also given apart where B's footage covers A's pose and where it does not.
    assert swapped["pose_faces_covered"] + swapped["pose_faces_beyond"] == 50
    assert swapped["pose_faces_beyond"] > 0 and swapped["pose_rotation_beyond"] < 3.0


def test_a_still_and_a_jittering_paste_of_b_pass_identity_and_fail_expression_and_motion(unmodified_report):
    report, _, _ = unmodified_report
    for column in ("still", "jittered"):
        verdict = passes(report, column)
        assert verdict["identity"] is True, column  # identity alone cannot tell a paste from a swap
        assert not verdict["mouth_gain"] and not verdict["eye_correlation"], (column, report["verdict"])
        assert not verdict["motion_correlation"], (column, report["verdict"])
    assert not passes(report, "jittered")["motion_speed"]
    assert not passes(report, "jittered")["colour_flicker"]  # its edge moves every frame
    # Matched in colour by the converter's own blending, the still paste is measured as near A's
    # skin, but further than the re-encoded original is.
    held = report["summary"]["held_out"]
    for key in ("colour", "seam"):
        assert held["swapped"][key] < 1.0 and held["still"][key] > 2 * held["swapped"][key], (key, held)
    # The faithful video ranks above both pastes on every expression and motion measure.
    rows = {row["key"]: row for row in report["verdict"]}
    for key in ("mouth_correlation", "mouth_gain", "eye_correlation", "motion_correlation"):
        assert rows[key]["swapped"] > max(rows[key]["still"], rows[key]["jittered"]) + 0.2, rows[key]


def test_the_ceiling_a_at_64_px_follows_a_and_fails_only_detail_of_the_expression_bands(unmodified_report):
    # A's own face through a 64 px network's view: what a perfect model of that size scores.
    report, _, _ = unmodified_report
    verdict = passes(report, "ceiling")
    for key in ("mouth_correlation", "mouth_gain", "eye_correlation", "motion_correlation", "motion_speed",
                "pose_rotation"):
        assert verdict[key], (key, report["verdict"])
    assert verdict["sharpness"] is False  # 64 px
    assert verdict["identity"] is None and verdict["feature_similarity"] is None  # A's own face: n/a
    held = report["summary"]["held_out"]
    ceiling = held["ceiling"]
    assert ceiling["sharpness"] < held["unmodified"]["sharpness"] - 0.3, ceiling["detail_ratios"]
    assert held["ceiling"]["mouth_gain"] > 0.85, held["ceiling"]["mouth_following"]


def test_a_paste_of_b_that_lets_a_s_eyes_and_mouth_through_fails_own_features(face_dirs, data_dir, tmp_path):
    # What a model does whose mask has holes at the eyes and mouth: B's face, A's own features.
    # Its mouth follows A's perfectly; only the own-features measure can tell.
    clip = data_path(data_dir, "clips", "identity_a.mp4")
    framing = run_record.describe_faces(face_dirs["a"], 0.2)[1]
    controls = evaluator._Controls(face_dirs["b"], 0.2, framing)
    detector = detect.FaceDetector(detect.DetectorConfig(min_face_size=160))
    holes = str(tmp_path / "holes.mp4")
    writer = video.VideoWriter(holes, (512, 512), 30.0)
    for index, frame in enumerate(media.iter_video(clip)):
        if 284 <= index < 284 + 30:
            faces = detector(frame)
            out = controls(index, frame, faces)["still"]
            for face in faces:
                regions = masks.region_masks(face.landmarks, frame.shape[:2])
                through = (regions["eyes"] > 127) | (regions["mouth"] > 127)
                out[through] = frame[through]
            writer.write(out)
    writer.close()
    report, _, _ = evaluate(face_dirs, clip, holes, tmp_path / "out", controls=False)
    verdict = passes(report, "swapped")
    assert verdict["mouth_correlation"] and verdict["mouth_gain"], report["verdict"]
    assert verdict["feature_similarity"] is False, report["verdict"]


def test_the_report_leads_with_the_verdict_and_keeps_every_frame(unmodified_report):
    report, config, log = unmodified_report
    written = json.load(open(config.output_path("report.json")))
    assert len(written["frames"]) == 50 and written["verdict"] == json.loads(json.dumps(report["verdict"]))
    assert all(entry["held_out"] is True and len(entry["faces"]) == 1 for entry in written["frames"])
    text = open(config.output_path("report.md")).read()
    assert text.index("| measure | band | this swap | unmodified (JPEG q90) | still B paste |") < text.index(
        "## Inputs")
    for phrase in ("**Verdict: fails identity, own features** (on the 50 held-out frames)",
                   "a stand-in for ArcFace/CosFace",
                   "a stand-in for Hopenet",
                   "2 other people (biden2, extra_man_hoodie)", "held-out faces of B", "copy_contact_sheet.png",
                   "## Does B's training footage cover what A does?"):
        assert phrase in text, phrase
    sheet = Image.open(config.output_path("contact_sheet.png"))
    assert sheet.text["synthetic_media"] == "true" and "Synthetic media" in sheet.text["Description"]
    assert sheet.size[1] > 6 * 240
    assert "Head pose error where A's yaw and pitch stay within B's training faces'" in text
    assert "Head pose error where A's yaw and pitch stay within B's training faces'" in log
    assert "FAIL  identity" in log and "verdict: fails 2 of 13 bands (identity, own features)" in log
    assert sorted(os.listdir(os.path.dirname(config.output_path("x")))) == [
        f"copy_{name}" for name in ("contact_sheet.png", "report.json", "report.md")]


def test_a_video_of_b_passes_identity(face_dirs, data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "identity_b.mp4")
    report, _, _ = evaluate(face_dirs, clip, clip, tmp_path, max_frames=20)
    verdict = passes(report, "swapped")
    assert verdict["identity"] is True and verdict["pose_rotation"] and verdict["sharpness"]
    assert "ceiling" not in report["summary"]["unknown"]  # no model run: no network's view to reduce A to
    summary = report["summary"]["unknown"]["swapped"]  # A's faces do not come from this video
    assert summary["identity"] == 1.0 and summary["pose_rotation"] == 0.0
    assert summary["background_psnr"] == float("inf")  # the same frames


def test_held_out_frames_are_converted_and_training_frames_are_reported_apart(
        face_dirs, data_dir, smoke_model, smoke_export, tmp_path):
    clip = data_path(data_dir, "clips", "identity_a.mp4")
    model = os.path.join(smoke_export, "smoke")
    held = str(tmp_path / "held.mp4")
    converter.run(converter.ConvertConfig(input=clip, output=held, model=model, held_out_of=smoke_model,
                                          end=9.9), log=io.StringIO())
    report, _, log = evaluate(face_dirs, clip, held, tmp_path / "held", model_dir=smoke_model, controls=False)
    assert report["inputs"]["first_frame"] == 281  # the first frame the smoke model held out
    assert report["summary"]["training"]["frames"] == 0 and "training frames" not in log
    swapped = report["summary"]["held_out"]["swapped"]
    assert 0.0 <= swapped["identity"] <= 1.0 and np.isfinite(swapped["sharpness"])
    assert report["held_out_model"]["step"] == 6 and report["held_out_model"]["faces"] == {"a": 7, "b": 16}

    trained = str(tmp_path / "trained.mp4")
    converter.run(converter.ConvertConfig(input=clip, output=trained, model=model, start=2.0, end=2.4),
                  log=io.StringIO())
    with pytest.raises(UserError, match=f"--holdout=0.1: {smoke_model} was trained with --holdout=0.2"):
        evaluate(face_dirs, clip, trained, tmp_path, model_dir=smoke_model, holdout=0.1)
    report, _, log = evaluate(face_dirs, clip, trained, tmp_path / "trained", model_dir=smoke_model,
                              controls=False)
    assert report["inputs"]["first_frame"] == 60 and report["verdict_on"] == "training"
    assert report["summary"]["training"]["frames"] == 12
    assert "12 of the 12 frames evaluated were training" in log


def test_coverage_says_whether_b_covers_a(face_dirs, tmp_path):
    a, b = coverage.measure_folder(face_dirs["a"]), coverage.measure_folder(face_dirs["b"])
    assert (a.name, b.name) == ("identity_a", "identity_b")
    # B opens the mouth wider than A ever does, so A's mouth is covered; not the other way round.
    assert not [gap for gap in coverage.gaps(a, b) if gap.measure == "mouth"]
    (wider,) = [gap for gap in coverage.gaps(b, a) if gap.measure == "mouth"]
    assert wider.direction == "above" and wider.a_extreme > 0.45
    # A turns her head further than B's footage shows.
    assert any(gap.measure == "yaw" for gap in coverage.gaps(a, b))
    (low, high), (pitch_low, pitch_high) = coverage.b_range(b, "yaw"), coverage.b_range(b, "pitch")
    middle = ((low + high) / 2, (pitch_low + pitch_high) / 2)
    assert coverage.pose_beyond(b, *middle) == 0.0
    assert coverage.pose_beyond(b, low - 4.0, middle[1]) == pytest.approx(4.0)
    assert coverage.pose_beyond(b, high + 1.0, pitch_high + 2.0) == pytest.approx(3.0)
    assert float(np.mean([coverage.pose_beyond(b, y, p) > 0 for y, p in zip(a.values["yaw"], a.values["pitch"],
                                                                           strict=True)])) > 0.2
    done = run_module("faceswap_tf.coverage", f"--faces_a={face_dirs['a']}", f"--faces_b={face_dirs['b']}",
                      f"--output={tmp_path / 'coverage.md'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "turns the head further" in done.stderr and (tmp_path / "coverage.md").exists()


def test_bad_inputs_are_one_line_errors_and_write_nothing(face_dirs, data_dir, tmp_path):
    a = data_path(data_dir, "clips", "identity_a.mp4")
    b = data_path(data_dir, "clips", "identity_b.mp4")
    other = data_path(data_dir, "clips", "extra_man_glasses.mp4")
    photo = data_path(data_dir, "images", "faces", "biden2.jpg")
    for original, swapped, options, message in [
        (a, b, {}, f"{b}: 480x480, but {a} is 512x512: it was not made from it"),
        (b, other, {}, f"{other}: no stretch of {b} looks like it"),
        (a, a, {"start": 9.5}, f"{a}: does not look like {a} from frame 285 (--start; mean difference"),
        (a, photo, {}, f"{photo}: not a video"),
        (a, a, {"distractors": (f"{tmp_path}/nobody",)}, f"{tmp_path}/nobody: no such file or folder"),
    ]:
        with pytest.raises(UserError) as error:
            evaluate(face_dirs, original, swapped, tmp_path, **options)
        assert str(error.value).startswith(message), str(error.value)
    # As a user meets them: one line and exit code 2, from each command.
    for module, args, message in [
        ("faceswap_tf.evaluate", [f"--original={a}", f"--swapped={photo}", f"--faces_b={face_dirs['b']}",
                                  f"--output_dir={tmp_path}"], f"{photo}: not a video"),
        ("faceswap_tf.coverage", [f"--faces_b={tmp_path}/nope", f"--output={tmp_path}/coverage.md"],
         f"{tmp_path}/nope: no alignments.json"),
    ]:
        result = run_module(module, f"--faces_a={face_dirs['a']}", *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
        assert lines[0].startswith(f"error: {message}"), lines
    assert os.listdir(tmp_path) == []


def test_a_truncated_original_is_evaluated_as_far_as_it_decodes(face_dirs, data_dir, tmp_path):
    import subprocess

    import imageio_ffmpeg

    clip = data_path(data_dir, "clips", "identity_a.mp4")
    streamable = tmp_path / "streamable.mp4"  # the index first, so that a cut file still decodes its start
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", clip, "-c", "copy", "-movflags",
                    "+faststart", str(streamable)], check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(streamable.read_bytes()[: streamable.stat().st_size // 8])
    decodable = sum(1 for _ in media.iter_video(str(cut)))  # the decoder stops quietly at the cut
    assert 8 <= decodable < 354
    report, _, _ = evaluate(face_dirs, str(cut), clip, tmp_path, controls=False)
    assert report["inputs"]["frames"] == decodable and report["inputs"]["first_frame"] == 0
    assert report["summary"]["unknown"]["swapped"]["identity"] == 0.0  # a copy: not the model's footage
