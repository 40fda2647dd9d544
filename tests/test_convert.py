"""The convert stage: real clips through a smoke-trained, exported model."""

import io
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from faceswap_tf import media, metrics
from faceswap_tf.convert import backends, blend, converter, video
from faceswap_tf.convert.tracks import Smoother, Tracks, jitter
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align, detect, identity, masks
from tests.conftest import ROOT, data_path
from tests.test_run_record import snapshot
from tests.tf_serving_protocol import ProtocolServer


def frames_of(path):
    return list(media.iter_video(path))


def psnr(a, b, where):
    error = ((a.astype(np.float64) - b.astype(np.float64)) ** 2)[where].mean()
    return 10 * np.log10(255.0**2 / max(error, 1e-12))


def convert(smoke_export, source, output, **options):
    config = converter.ConvertConfig(input=source, output=str(output),
                                     model=os.path.join(smoke_export, "smoke"), **options)
    log = io.StringIO()
    return converter.run(config, log=log), config


@pytest.fixture(scope="module")
def clip_a(data_dir):
    return data_path(data_dir, "clips", "identity_a.mp4")


@pytest.fixture(scope="module")
def converted(smoke_export, clip_a, tmp_path_factory):
    folder = tmp_path_factory.mktemp("converted")
    summary, config = convert(smoke_export, clip_a, folder / "swapped.mp4")
    video.transcode(clip_a, str(folder / "plain.mp4"), config.codec, config.crf, config.preset)
    return summary, config, str(folder / "swapped.mp4"), str(folder / "plain.mp4")


def test_a_video_keeps_its_frames_rate_size_and_audio(converted, clip_a):
    summary, _, output, _ = converted
    source, result = media.probe_video(clip_a), media.probe_video(output)
    assert len(frames_of(output)) == len(frames_of(clip_a)) == summary.frames
    assert result.fps == pytest.approx(source.fps, abs=1e-3)
    assert (result.width, result.height) == (source.width, source.height)
    assert source.has_audio and result.has_audio
    assert summary.faces == summary.frames  # one face in every frame of this clip
    assert not [f for f in os.listdir(os.path.dirname(output)) if f.startswith(".")]  # no leftovers


def test_the_output_says_it_is_synthetic_and_which_model_made_it(converted):
    tags = video.read_metadata(converted[2])
    assert tags["synthetic_media"] == "true" and tags["generator"] == "faceswap-tf"
    assert "Synthetic media" in tags["comment"] and "model smoke, step 6" in tags["comment"]


def test_only_the_swapped_face_regions_change(converted, smoke_export, clip_a):
    """Outside the regions the converter pasted into, the output matches a plain transcode
    at the same settings; inside the faces, it differs."""
    _, config, output, plain = converted
    metadata = backends.LocalSavedModel(os.path.join(smoke_export, "smoke")).metadata
    finder = converter.FaceFinder(config, metadata, stream=True, timings={})
    jobs = []
    for index, frame in enumerate(frames_of(clip_a)):
        jobs += finder.push(index, frame)
    jobs += finder.flush()
    swapped, baseline = frames_of(output), frames_of(plain)
    size = metadata.framing.crop_size
    outside_psnr, inside_diff = [], []
    for job in jobs[::15]:
        pasted = np.zeros(job.frame.shape[:2], np.uint8)
        face = np.zeros_like(pasted)
        for face_job in job.faces:
            corners = align.transform_points(align.invert(face_job.matrix),
                                             np.array([[0, 0], [size, 0], [size, size], [0, size]]))
            cv2.fillConvexPoly(pasted, corners.round().astype(np.int32), 1)
            inner = align.transform_points(align.invert(face_job.matrix), align.template_points(size, 0.2)[17:])
            cv2.fillConvexPoly(face, cv2.convexHull(inner.round().astype(np.int32)), 1)
        pasted = cv2.dilate(pasted, np.ones((9, 9), np.uint8)).astype(bool)
        outside_psnr.append(psnr(swapped[job.index], baseline[job.index], ~pasted))
        difference = np.abs(swapped[job.index].astype(int) - baseline[job.index])
        inside_diff.append(difference[face.astype(bool)].mean())
    assert min(outside_psnr) >= 40.0, outside_psnr
    assert min(inside_diff) > 3.0, inside_diff


def test_serving_url_gives_the_same_frames_as_the_local_savedmodel(smoke_export, clip_a, tmp_path):
    local, _ = convert(smoke_export, clip_a, tmp_path / "local.mp4", end=1.0)
    with ProtocolServer({"smoke": {6: os.path.join(smoke_export, "smoke", "6")}}) as server:
        config = converter.ConvertConfig(input=clip_a, output=str(tmp_path / "served.mp4"),
                                         serving_url=f"{server.url}/v1/models/smoke", end=1.0)
        served = converter.run(config, log=io.StringIO())
        assert server.requests > 2
    assert served.frames == local.frames == 30 and served.faces == local.faces
    local_frames = frames_of(str(tmp_path / "local.mp4"))
    served_frames = frames_of(str(tmp_path / "served.mp4"))
    for a, b in zip(local_frames, served_frames, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_reference_swaps_only_the_performer(smoke_export, data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "multi_face_stage.mp4")
    frames = frames_of(clip)
    detector = detect.FaceDetector(detect.DetectorConfig(min_face_size=60))
    describer = identity.FaceDescriber()
    reference = tmp_path / "performer.png"
    cv2.imwrite(str(reference), cv2.cvtColor(frames[150], cv2.COLOR_RGB2BGR))  # the performer, close up
    performer = describer(frames[150], detector(frames[150])[0])
    summary, config = convert(smoke_export, clip, tmp_path / "swapped.mp4", reference=str(reference),
                              detector=detect.DetectorConfig(min_face_size=60), start=3.5, end=9.5,
                              colour="none")
    video.transcode(clip, str(tmp_path / "plain.mp4"))
    first = int(round(3.5 * media.probe_video(clip).fps))
    swapped, plain = frames_of(str(tmp_path / "swapped.mp4")), frames_of(str(tmp_path / "plain.mp4"))[first:]
    assert len(swapped) == summary.frames
    seen = {"performer": 0, "other": 0}
    for index in range(0, len(swapped), 5):
        for face in detector(frames[first + index]):
            left, top, right, bottom = face.box
            box = (slice(max(top, 0), bottom), slice(max(left, 0), right))
            changed = np.abs(swapped[index][box].astype(int) - plain[index][box]).mean()
            # Who it is, by the descriptor with a margin: at a cut or in motion blur the
            # performer's own distance rises to about 0.6; audience faces are at 0.66 to 0.78.
            distance = identity.distance(describer(frames[first + index], face), performer)
            if 0.55 < distance < 0.65:
                continue
            is_performer = distance <= 0.55
            seen["performer" if is_performer else "other"] += 1
            if is_performer:
                assert changed > 3.0, (index, changed)
            else:
                assert changed < 1.5, (index, changed)
    assert seen["performer"] >= 5 and seen["other"] >= 2, seen


def test_smoothing_reduces_the_jitter_of_the_aligned_face(data_dir):
    tracker = detect.FaceTracker(detect.FaceDetector(detect.DetectorConfig()), 8)
    found = [tracker(frame) for frame in media.iter_video(data_path(data_dir, "clips", "identity_b.mp4"))]
    template = align.template_points(256, 0.2)
    result = {}
    for sigma in (0.0, 2.0):
        tracks, smoother, placed = Tracks(), Smoother(sigma), []
        for index, faces in enumerate(found):
            placed += smoother.push(index, tracks(faces))
        placed += smoother.flush()
        assert [index for index, _ in placed] == list(range(len(found)))
        points = [align.transform_points(align.invert(align.alignment_matrix(faces[0].landmarks, 256, 0.2)),
                                         template) for _, faces in placed]
        result[sigma] = jitter(np.array(points))
    (raw_move, raw_shake), (smooth_move, smooth_shake) = result[0.0], result[2.0]
    assert smooth_move < 0.7 * raw_move and smooth_shake < 0.3 * raw_shake, result


def test_smoothing_has_no_lag_on_steady_motion():
    base = np.random.default_rng(1).uniform(100, 200, (68, 2))
    smoother, tracks, out = Smoother(2.0), Tracks(), []
    for t in range(20):
        face = detect.Face(box=(100 + 3 * t, 100, 200 + 3 * t, 200), score=1.0, landmarks=base + [3.0 * t, 0.0])
        out += smoother.push(t, tracks([face]))
    out += smoother.flush()
    # A straight line stays where it is, at the ends too, where the window shrinks symmetrically.
    assert [t for t, _ in out] == list(range(20))
    for t, faces in out:
        np.testing.assert_allclose(faces[0].landmarks, base + [3.0 * t, 0.0], atol=1e-9)
    assert {faces[0].track for _, faces in out} == {0}


def test_colour_transfer_and_paste():
    rng = np.random.default_rng(2)
    reference = cv2.GaussianBlur(rng.integers(60, 200, (64, 64, 3), dtype=np.uint8), (0, 0), 4)  # smooth
    face = np.clip(reference.astype(int) + [40, -20, 10], 0, 255).astype(np.uint8)
    mask = np.ones((64, 64), np.float32)
    matched = blend.colour_transfer(face, reference, mask, "lab")
    lab = [cv2.cvtColor(image, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(axis=0) for image in (matched, reference)]
    np.testing.assert_allclose(lab[0], lab[1], atol=2.0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    untouched = frame.copy()
    matrix = np.array([[1.0, 0.0, -40.0], [0.0, 1.0, -30.0]])
    blend.paste(frame, face, np.zeros((64, 64), np.float32), matrix)
    np.testing.assert_array_equal(frame, untouched)
    blend.paste(frame, face, mask, matrix)
    np.testing.assert_array_equal(frame[32:92, 42:102], face[2:62, 2:62])
    assert np.array_equal(frame[:30], untouched[:30])


def test_colour_is_matched_on_the_skin_and_local_colour_matches_the_lighting_across_the_face(data_dir):
    from tests.test_metrics import _lab_shifted, _real_face

    frame, landmarks = _real_face(data_dir)
    top, left = np.floor(landmarks.min(axis=0) - 60).astype(int).clip(0)[::-1]
    frame, landmarks = np.ascontiguousarray(frame[top:top + 700, left:left + 700]), landmarks - [left, top]
    hull = masks.face_mask(landmarks, frame.shape[:2]).astype(np.float32) / 255.0
    mouth = np.zeros(frame.shape[:2], np.uint8)
    masks.fill_dilated(mouth, landmarks[align.MOUTH], 20)
    # The reference opens its mouth wide (a dark hole): counted in, it would darken the skin.
    opened = frame.copy()
    opened[mouth > 0] = 20
    matched = {"face": blend.colour_transfer(frame, opened, hull, "lab", landmarks),
               "face and features": blend.colour_transfer(frame, opened, hull, "lab")}
    found = metrics.colour_mismatch(frame, matched, landmarks)
    assert found["face"].colour < 1.0 < 4.0 < found["face and features"].colour, found
    # Another person's tone, lit from the other side: lab takes the tone and leaves the
    # lighting; local takes both, so the skin matches everywhere up to the face's edge.
    ramp = np.linspace(-1.0, 1.0, frame.shape[1], dtype=np.float32)[None, :].repeat(frame.shape[0], 0)
    other = _lab_shifted(_lab_shifted(frame, (0, 6, 10), np.ones_like(ramp)), (12, 0, 0), ramp)
    matched = {mode: blend.colour_transfer(other, frame, hull, mode, landmarks)
               for mode in ("none", "lab", "local")}
    found = metrics.colour_mismatch(frame, matched, landmarks)
    colour, seam = ({mode: getattr(m, key) for mode, m in found.items()} for key in ("colour", "seam"))
    assert colour["local"] < 1.5 and seam["local"] < 3.0, (colour, seam)
    assert colour["none"] > colour["lab"] > 2 * colour["local"], colour
    assert seam["lab"] > 2 * seam["local"], seam


def test_detail_transfer_carries_the_frames_skin_texture_and_never_its_eyes_or_mouth():
    size, rng = 128, np.random.default_rng(3)
    landmarks = align.template_points(size, 0.2)
    weight = blend.detail_weight(landmarks, size)
    def point(p):  # (row, column)
        return tuple(np.round(p).astype(int)[::-1])

    cheek = (landmarks[2] + landmarks[31]) / 2  # between the jaw and the nostril
    assert weight[point(cheek)] > 0.8
    for feature in (align.LEFT_EYE, align.RIGHT_EYE, align.MOUTH):
        assert weight[point(landmarks[feature].mean(axis=0))] < 0.01
    assert weight[0, 0] == 0.0  # outside the face
    # A textured frame, a flat swap pasted at twice the crop's scale: the texture comes back on
    # the skin (where it may), at the scale finer than the network's pixel only.
    frame = np.clip(128 + rng.normal(0, 30, (256, 256, 3)), 0, 255).astype(np.uint8)
    flat = np.full((size, size, 3), 128, np.uint8)
    mask = np.ones((size, size), np.float32)
    matrix = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])  # frame -> crop
    plain, detailed = frame.copy(), frame.copy()
    blend.paste(plain, flat, mask, matrix)
    blend.paste(detailed, flat, mask, matrix, detail=weight, detail_sigma=2.0)
    def at(image, p):  # a 7x7 patch of the frame at crop point p
        return image[int(2 * p[1]) - 3:int(2 * p[1]) + 4, int(2 * p[0]) - 3:int(2 * p[0]) + 4]

    assert at(plain, cheek).std() < 1.0
    assert at(detailed, cheek).std() > 0.5 * at(frame, cheek).std()
    eye = landmarks[align.LEFT_EYE].mean(axis=0)
    assert at(detailed, eye).std() < 0.1 * at(frame, eye).std()


def test_a_faceless_clip_passes_through_with_a_note(smoke_export, data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "no_faces_crowd.mp4")
    summary, _ = convert(smoke_export, clip, tmp_path / "out.mp4")
    assert summary.faces == 0 and summary.frames == len(frames_of(clip))
    assert any("no face found in any of its" in w for w in summary.warnings)
    assert len(frames_of(str(tmp_path / "out.mp4"))) == summary.frames


def test_a_truncated_video_converts_what_decodes_and_says_so(smoke_export, clip_a, tmp_path):
    # The sample clip keeps its index at the end, where a cut file loses it (nothing decodes:
    # one clear error); with the index first (as streamed files have it), the start survives.
    streamable = tmp_path / "streamable.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", clip_a, "-c", "copy", "-movflags",
                    "+faststart", str(streamable)], check=True)
    data = streamable.read_bytes()
    broken = tmp_path / "truncated.mp4"
    broken.write_bytes(data[: len(data) // 2])
    summary, _ = convert(smoke_export, str(broken), tmp_path / "out.mp4")
    assert 0 < summary.frames < 354
    assert any("truncated" in w or "decoding stopped" in w for w in summary.warnings), summary.warnings
    assert len(frames_of(str(tmp_path / "out.mp4"))) == summary.frames


def test_images_a_gif_and_a_folder(smoke_export, data_dir, tmp_path):
    summary, _ = convert(smoke_export, data_path(data_dir, "images", "faces", "biden2.jpg"),
                         tmp_path / "biden.png")
    assert summary.faces == 1
    assert "Synthetic media" in Image.open(tmp_path / "biden.png").text["Description"]

    gif = data_path(data_dir, "clips", "small_face.gif")
    summary, _ = convert(smoke_export, gif, tmp_path / "out.gif",
                         detector=detect.DetectorConfig(min_face_size=30))
    assert len(iio.imread(str(tmp_path / "out.gif"), index=None)) == len(iio.imread(gif, index=None))
    assert summary.faces > 0

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("two_people.jpg", "obama2.jpg"):
        (folder / name).write_bytes(open(data_path(data_dir, "images", "faces", name), "rb").read())
    (folder / "broken.png").write_bytes(open(data_path(data_dir, "images", "bad", "broken.png"), "rb").read())
    (folder / "dog.jpg").write_bytes(open(data_path(data_dir, "images", "bad", "dog.jpg"), "rb").read())
    summary, _ = convert(smoke_export, str(folder), tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["dog.jpg", "obama2.jpg", "two_people.jpg"]
    assert len(summary.files_skipped) == 1 and summary.faces >= 3
    exif = Image.open(tmp_path / "out" / "obama2.jpg").getexif()
    assert "Synthetic media" in exif[0x010E]
    assert 0x010E not in Image.open(tmp_path / "out" / "dog.jpg").getexif()  # untouched, not labelled


def run_convert(*args, **kwargs):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert"), *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


def test_mistakes_are_one_clear_line(smoke_export, smoke_model, clip_a, data_dir, tmp_path):
    model = f"--model={os.path.join(smoke_export, 'smoke')}"
    stranger = data_path(data_dir, "clips", "extra_man_hoodie.mp4")
    for args, message in [
        # (TensorFlow is imported late here: by the run record, and by the local model below)
        ([model, f"--input={stranger}", f"--output={tmp_path}/o.mp4", f"--held_out_of={smoke_model}"],
         "that run never trained on"),
        ([model, f"--input={tmp_path}/nope.mp4", f"--output={tmp_path}/o.mp4"],
         f"{tmp_path}/nope.mp4: no such file"),
        ([f"--model={tmp_path}", f"--input={clip_a}", f"--output={tmp_path}/o.mp4"], "no SavedModel version"),
        ([model, f"--input={clip_a}", f"--output={tmp_path}/o.png"], "a video converts to"),
        ([model, f"--input={data_path(data_dir, 'images', 'bad', 'broken.png')}", f"--output={tmp_path}/o.png"],
         "cannot decode the image"),
        ([f"--input={clip_a}", f"--output={tmp_path}/o.mp4"], "give one of --model"),
    ]:
        result = run_convert(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
        [line] = result.stderr.strip().splitlines()  # one line: no TensorFlow start-up lines either
        assert message in line
    assert not os.path.exists(tmp_path / "o.mp4") and not os.path.exists(tmp_path / "o.png")


def test_a_killed_run_leaves_nothing_at_the_output(smoke_export, data_dir, tmp_path):
    clip = data_path(data_dir, "clips", "identity_b.mp4")
    output = tmp_path / "out.mp4"
    for sig in (signal.SIGINT, signal.SIGKILL):
        # Ctrl-C as in a terminal: the child starts with SIGINT's default disposition, whatever
        # the test worker it is started from inherited or was left with.
        process = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "convert"),
                                    f"--model={os.path.join(smoke_export, 'smoke')}", f"--input={clip}",
                                    f"--output={output}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while not [f for f in os.listdir(tmp_path) if ".partial-" in f] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # frames are being written
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), (
            signal.getsignal(signal.SIGINT), stderr.decode()[-2000:])
        assert not output.exists()
        if sig == signal.SIGINT:  # a clean stop also removes its temporary files
            assert "Traceback" not in stderr.decode() and "interrupted" in stderr.decode()
            assert not os.listdir(tmp_path), os.listdir(tmp_path)
    leftovers = [f for f in os.listdir(tmp_path) if ".partial-" in f]  # kill -9 leaves hidden ones
    assert leftovers and all(f.startswith(".") for f in leftovers)
    convert(smoke_export, data_path(data_dir, "clips", "identity_a.mp4"), output, end=0.2)
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]  # the next run swept them away


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(smoke_export, data_dir, tmp_path):
    image = tmp_path / "face.jpg"
    shutil.copy(data_path(data_dir, "images", "faces", "obama2.jpg"), image)
    folder = tmp_path / "faces"
    folder.mkdir()
    shutil.copy(image, folder / "face.jpg")
    os.link(image, tmp_path / "hard_link.jpg")
    (tmp_path / "elsewhere").mkdir()
    os.link(folder / "face.jpg", tmp_path / "elsewhere" / "face.jpg")
    before = snapshot(tmp_path)
    for source, output, problem in [
        (image, image, "is the input .* itself"),
        (image, f"{tmp_path}/faces/../face.jpg", "is the input .* itself"),  # another spelling
        (image, tmp_path / "hard_link.jpg", "is the input .* itself"),  # the same file by inode
        (folder, folder, "inside the input folder"),
        (folder, folder / "swapped", "inside the input folder"),
        (folder, tmp_path / "elsewhere", ".*/elsewhere/face.jpg is the input .* itself"),
    ]:
        with pytest.raises(UserError, match=f"--output={output}: {problem}"):
            convert(smoke_export, str(source), output)
    assert snapshot(tmp_path) == before


def test_an_output_that_cannot_be_written_is_refused_before_any_work(smoke_export, clip_a, tmp_path):
    from tests.test_files import unwritable_folder

    read_only = unwritable_folder(tmp_path)
    (tmp_path / "a_folder.mp4").mkdir()
    for output, problem in [(tmp_path / "missing" / "o.mp4", f"no folder {tmp_path}/missing to write it in"),
                            (f"{read_only}/o.mp4", f"cannot write in {read_only}"),
                            (tmp_path / "a_folder.mp4", "is a folder; give the file to write")]:
        started = time.monotonic()
        with pytest.raises(UserError, match=f"--output={output}: {problem}"):
            convert(smoke_export, clip_a, output)
        assert time.monotonic() - started < 10  # not after the whole conversion


def ffmpeg(*args, stdin=None):
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *args], input=stdin, check=True)


def audio_seconds(path):
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a",
                           "-ac", "1", "-ar", "8000", "-f", "s16le", "-"], capture_output=True, check=True)
    return len(done.stdout) / 2 / 8000


def test_a_variable_frame_rate_keeps_its_timing_and_audio(smoke_export, tmp_path):
    # 50 frames over 3 s: 25 at 25 frames/s, then 25 at 12.5; frame n shows n in binary, as
    # eight black or white bands (what a lossy codec cannot blur into another number).
    bits = (np.arange(50)[:, None] >> np.arange(8)) & 1
    pictures = np.repeat(np.repeat(bits[:, None, :] * 255, 64, axis=1), 8, axis=2).astype(np.uint8)
    shown = np.array([n * 0.04 if n < 25 else 1.0 + (n - 25) * 0.08 for n in range(50)])
    clip = tmp_path / "vfr.mp4"
    ffmpeg("-f", "rawvideo", "-pix_fmt", "gray", "-s", "64x64", "-r", "25", "-i", "-", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=3", "-filter_complex",
           "[0:v]setpts='if(lt(N,25),N*0.04,1.0+(N-25)*0.08)/TB'[v]", "-map", "[v]", "-map", "1:a",
           "-fps_mode", "vfr", "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip),
           stdin=pictures.tobytes())
    info = media.probe_video(str(clip))
    assert info.variable_rate and info.average_fps < info.fps
    summary, _ = convert(smoke_export, str(clip), tmp_path / "out.mp4")
    assert any("a variable frame rate" in w and "timing and the audio stay" in w for w in summary.warnings)
    out = frames_of(str(tmp_path / "out.mp4"))
    fps = media.probe_video(str(tmp_path / "out.mp4")).fps
    assert len(out) / fps == pytest.approx(3.0, abs=0.05)
    assert audio_seconds(tmp_path / "out.mp4") == pytest.approx(3.0, abs=0.05)
    seen = set()
    for index, frame in enumerate(out):  # each frame shows the picture the original shows then
        bands = frame[..., 0].reshape(64, 8, 8).mean(axis=(0, 2)) > 127
        frame_number = int(np.sum(bands << np.arange(8)))
        seen.add(frame_number)
        time_shown = index / fps
        assert shown[frame_number] <= time_shown + 1 / fps, (index, frame_number)
        assert frame_number == 49 or shown[frame_number + 1] >= time_shown - 1 / fps, (index, frame_number)
    assert seen == set(range(50))  # none dropped


def test_an_odd_sized_video_keeps_its_size_and_says_how(smoke_export, tmp_path):
    clip = tmp_path / "odd.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=511x383:rate=30:duration=1", "-c:v", "libx264", "-pix_fmt",
           "yuv444p", str(clip))
    summary, _ = convert(smoke_export, str(clip), tmp_path / "out.mp4")
    assert any("511x383, an odd size, kept" in w for w in summary.warnings), summary.warnings
    result = media.probe_video(str(tmp_path / "out.mp4"))
    assert (result.width, result.height) == (511, 383)
    assert len(frames_of(str(tmp_path / "out.mp4"))) == 30
