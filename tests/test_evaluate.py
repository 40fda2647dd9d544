"""The evaluate stage on real footage: an unmodified video, a video of B, a real swap."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from faceswap_tf import evaluator, media
from faceswap_tf.convert import converter, video
from faceswap_tf.errors import UserError
from tests.conftest import data_path, run_module


def evaluate(face_dirs, original, swapped, output_dir, **options):
    config = evaluator.EvaluateConfig(original=original, swapped=swapped, faces_a=face_dirs["a"],
                                      faces_b=face_dirs["b"], output_dir=str(output_dir), gallery_size=10,
                                      **options)
    log = io.StringIO()
    return evaluator.run(config, log=log), config, log.getvalue()


def test_an_unmodified_video_scores_a_with_no_pose_or_expression_error(face_dirs, data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "identity_a.mp4")
    copy = str(tmp_path / "copy.mp4")
    video.transcode(clip, copy)  # re-encoded, as the converter writes: not bit-identical
    report, config, log = evaluate(face_dirs, clip, copy, tmp_path / "out", max_frames=24)
    summary = report["summary"]
    assert report["inputs"]["first_frame"] == 0 and report["inputs"]["frames"] == 24
    assert report["inputs"]["frame_match"]["ambiguous"] is False
    assert summary["faces"] == summary["faces_found_in_swapped"] == 24
    assert summary["identity"]["closer_to_b"] == 0.0
    # Well inside dlib's same-person threshold (0.6) for A, and clearly nearer A than B.
    assert summary["identity"]["distance_a"] < 0.45
    assert summary["identity"]["distance_b"] > summary["identity"]["distance_a"] + 0.15
    assert summary["pose_error_degrees"]["rotation"] < 1.0, summary["pose_error_degrees"]
    assert summary["expression_error"] < 0.02
    assert summary["background_psnr"]["worst_frame"] > 40.0
    assert 0.8 < summary["flicker"]["ratio"] < 1.25
    # The report's three files, the per-frame values among them.
    written = json.load(open(config.output_path("report.json")))
    assert len(written["frames"]) == 24 and written["summary"] == json.loads(json.dumps(summary))
    assert all(len(entry["faces"]) == 1 and entry["faces"][0]["closer_to_b"] is False
               for entry in written["frames"])
    text = open(config.output_path("report.md")).read()
    for phrase in ("| identity retrieval | **0%**", "a stand-in for ArcFace/CosFace", "a stand-in for Hopenet",
                   "copy_contact_sheet.png", "| background PSNR |"):
        assert phrase in text, phrase
    sheet = Image.open(config.output_path("contact_sheet.png"))
    assert sheet.text["synthetic_media"] == "true" and "Synthetic media" in sheet.text["Description"]
    assert sheet.size[1] > 6 * 240
    assert "identity retrieval: 0% of the faces found nearer B" in log
    assert sorted(os.listdir(tmp_path / "out")) == [f"copy_{name}" for name in
                                                    ("contact_sheet.png", "report.json", "report.md")]


def test_a_video_of_b_scores_b(face_dirs, data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "identity_b.mp4")
    report, _, _ = evaluate(face_dirs, clip, clip, tmp_path, max_frames=20)
    summary = report["summary"]
    assert summary["faces_found_in_swapped"] == 20
    assert summary["identity"]["closer_to_b"] == 1.0
    assert summary["pose_error_degrees"]["rotation"] == 0.0 and summary["expression_error"] == 0.0
    assert summary["background_psnr"]["mean"] == float("inf")  # the same frames


def test_a_swap_from_the_middle_of_a_clip_is_found_and_measured(face_dirs, data_dir, smoke_model, smoke_export,
                                                                tmp_path):
    clip = data_path(data_dir, "clips", "identity_a.mp4")
    swapped = str(tmp_path / "swapped.mp4")
    converter.run(converter.ConvertConfig(input=clip, output=swapped, model=os.path.join(smoke_export, "smoke"),
                                          start=2.0, end=2.8), log=io.StringIO())
    with pytest.raises(UserError, match=f"--holdout=0.1: {smoke_model} was trained with --holdout=0.2"):
        evaluate(face_dirs, clip, swapped, tmp_path, model_dir=smoke_model, holdout=0.1)
    report, _, _ = evaluate(face_dirs, clip, swapped, tmp_path, model_dir=smoke_model)
    inputs, summary = report["inputs"], report["summary"]
    assert inputs["first_frame"] == 60 and inputs["frames"] == 24
    assert inputs["swapped_metadata"]["synthetic_media"] == "true"
    assert summary["faces_found_in_swapped"] >= 20
    for entry in report["frames"]:
        for face in entry["faces"]:
            if face["found"]:
                assert np.isfinite([face["distance_a"], face["distance_b"], face["expression_error"],
                                    *face["pose_error"], *face["pose_original"]]).all()
    assert summary["background_psnr"]["worst_frame"] > 38.0  # nothing outside the faces' crops changed
    held = report["held_out"]
    assert held["step"] == 6 and held["faces"] == {"a": 7, "b": 16}
    assert 0.0 <= held["identity/a_to_b_closer_to_b"] <= 1.0
    assert 5.0 < held["reconstruction/psnr_a"] < 40.0 and -1.0 < held["reconstruction/ssim_b"] < 1.0


def test_bad_inputs_are_one_line_errors_and_write_nothing(face_dirs, data_dir, tmp_path):
    a = data_path(data_dir, "clips", "identity_a.mp4")
    b = data_path(data_dir, "clips", "identity_b.mp4")
    other = data_path(data_dir, "clips", "extra_man_glasses.mp4")
    photo = data_path(data_dir, "images", "faces", "biden2.jpg")
    for original, swapped, options, message in [
        (a, b, [], f"{b}: 480x480, but {a} is 512x512: it was not made from it"),
        (b, other, [], f"{other}: no stretch of {b} looks like it"),
        (a, a, ["--start=9.5"], f"{a}: does not look like {a} from frame 285 (--start; mean difference"),
        (a, photo, [], f"{photo}: not a video"),
    ]:
        result = run_module("faceswap_tf.evaluate", f"--original={original}", f"--swapped={swapped}",
                            f"--faces_a={face_dirs['a']}", f"--faces_b={face_dirs['b']}",
                            f"--output_dir={tmp_path}", *options)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}"), result.stderr[-500:]
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
    report, _, _ = evaluate(face_dirs, str(cut), clip, tmp_path)
    assert report["inputs"]["frames"] == decodable and report["inputs"]["first_frame"] == 0
    assert report["summary"]["identity"]["closer_to_b"] == 0.0
