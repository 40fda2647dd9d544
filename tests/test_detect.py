"""The detect stage on smoke-sized data: labelled fakes from the smoke swapper, a detector
trained on some identities and measured on others, its export, and the scoring tool."""

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, data_path, run_module

MAX_FRAMES = 16


@pytest.fixture(scope="module")
def clips(data_dir):
    return {name: data_path(data_dir, "clips", f"{name}.mp4")
            for name in ("identity_a", "identity_b", "extra_man_hoodie", "extra_man_glasses")}


@pytest.fixture(scope="module")
def detect_data(smoke_model, clips, tmp_path_factory):
    """The smoke swapper both ways on its held-out frames, and each way onto a man it never saw:
    fakes of identity_a->b, identity_b->a, hoodie->identity_b, glasses->identity_a."""
    from faceswap_tf.detect import fakes

    out = tmp_path_factory.mktemp("detect_data")
    jobs = fakes.pair_jobs(smoke_model) + [
        fakes.SwapJob(smoke_model, "a_to_b", clips["extra_man_hoodie"]),
        fakes.SwapJob(smoke_model, "b_to_a", clips["extra_man_glasses"])]
    log = io.StringIO()
    fakes.build(fakes.DatasetConfig(str(out), tuple(jobs), crfs=(35,), max_frames=MAX_FRAMES,
                                    min_face_size=160), log=log)
    return str(out), jobs, log.getvalue()


def test_the_dataset_holds_aligned_real_and_fake_crops_masks_and_provenance(detect_data, smoke_model, clips):
    from faceswap_tf import run_record
    from faceswap_tf.detect import manifest

    folder, _, _ = detect_data
    found = manifest.read(folder)
    assert len(found.jobs) == 4
    record = run_record.read(smoke_model)
    by_source = {job.source: job for job in found.jobs.values()}
    held_out_from = record.faces["a"].held_out_from[os.path.abspath(clips["identity_a"])]
    assert by_source["identity_a"].first_frame == held_out_from
    assert by_source["identity_a"].held_out and not by_source["extra_man_hoodie"].held_out
    assert by_source["extra_man_hoodie"].target == "identity_b"
    assert by_source["extra_man_glasses"].target == "identity_a"
    assert all(job.step == 6 and job.crfs == (35,) for job in found.jobs.values())
    per_job = {name: sum(face.job == name for face in found.faces) for name in found.jobs}
    assert all(MAX_FRAMES // 2 <= count <= MAX_FRAMES for count in per_job.values()), per_job
    from faceswap_tf import media
    from faceswap_tf.faces import detect

    fitter = detect.FaceDetector(detect.DetectorConfig())
    for face in found.faces[::7]:
        job = found.jobs[face.job]
        assert face.frame >= job.first_frame
        real, fake = (cv2.imread(os.path.join(folder, getattr(face, k))) for k in ("real", "fake"))
        mask = cv2.imread(os.path.join(folder, face.mask), cv2.IMREAD_GRAYSCALE)
        assert real.shape == fake.shape == (256, 256, 3) and mask.shape == (256, 256)
        # Where the crop reaches past the frame's edge it mirrors the frame, swapped face and all.
        info = media.probe_video(job.video)
        ones = np.ones((info.height, info.width), np.uint8)
        in_frame = cv2.warpAffine(ones, np.array(face.matrix), (256, 256), flags=cv2.INTER_NEAREST,
                                  borderValue=0) == 1
        inside, outside = mask > 100, (mask == 0) & in_frame  # the 6-step mask is about 0.5 inside the view
        assert inside.mean() > 0.05 and outside.mean() > 0.05
        diff = np.abs(real.astype(int) - fake.astype(int)).mean(axis=2)
        # The swap changed the face where the mask says, and left the rest alone (up to resampling).
        assert diff[inside].mean() > 5 * max(diff[outside].mean(), 0.5)
        for kind in ("real", "fake"):
            assert os.path.exists(os.path.join(folder, face.crf["35"][kind]))
        # The real face's landmarks, in the crop: the nose tip lies under the swap's mask.
        points = np.asarray(face.landmarks)
        assert points.shape == (68, 2) and (points > 0).all() and (points < 256).all()
        assert mask[int(points[30, 1]), int(points[30, 0])] > 100
        # The swapped crop's own landmarks, fitted in the real face's box, lie on the same face;
        # fitted the same way on the real crop they give back the real face's.
        shown = np.asarray(face.fake_landmarks)
        assert shown.shape == (68, 2) and np.linalg.norm(shown - points, axis=1).mean() < 25
        refit = fitter.landmarks(cv2.cvtColor(real, cv2.COLOR_BGR2RGB), detect.landmark_box(points))
        assert np.linalg.norm(refit - points, axis=1).mean() < 5
    swapped = os.path.join(folder, by_source["identity_a"].swapped_video)
    from faceswap_tf.convert import video
    assert video.read_metadata(swapped).get("synthetic_media") == "true"


def test_a_rerun_adds_only_what_is_missing_and_a_failed_job_leaves_the_manifest_whole(detect_data, tmp_path):
    from faceswap_tf.detect import fakes, manifest
    from faceswap_tf.errors import UserError

    folder, jobs, _ = detect_data
    before = open(manifest.path_of(folder)).read()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    log = io.StringIO()
    with pytest.raises(UserError, match="broken.mp4"):
        fakes.build(fakes.DatasetConfig(folder, (*jobs, fakes.SwapJob(jobs[0].model, "a_to_b", str(broken))),
                                        crfs=(35,), max_frames=MAX_FRAMES, min_face_size=160), log=log)
    assert log.getvalue().count("already in the dataset") == 4
    assert open(manifest.path_of(folder)).read() == before
    assert not [name for name in os.listdir(folder) if name.startswith(".")]

    # A copy of the dataset, extended elsewhere, knows its jobs too (its swappers' exports now
    # lie in the copy: the jobs are named after the training runs).
    copy = shutil.copytree(folder, tmp_path / "copy")
    log = io.StringIO()
    fakes.build(fakes.DatasetConfig(str(copy), jobs, crfs=(35,), max_frames=MAX_FRAMES, min_face_size=160),
                log=log)
    assert log.getvalue().count("already in the dataset") == 4, log.getvalue()
    assert open(manifest.path_of(copy)).read() == before


def test_a_video_without_faces_adds_nothing_and_is_one_line(detect_data, smoke_model, data_dir):
    from faceswap_tf.detect import manifest

    folder, _, _ = detect_data
    before = open(manifest.path_of(folder)).read()
    os.makedirs(os.path.join(folder, ".scratch-left-by-a-killed-run"))
    crowd = data_path(data_dir, "clips", "no_faces_crowd.mp4")
    done = run_module("faceswap_tf.detect.dataset", f"--output_dir={folder}", "--max_frames=8", "--crfs=35",
                      f"--swap={smoke_model}:a_to_b:{crowd}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "no_faces_crowd.mp4: no face found" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert open(manifest.path_of(folder)).read() == before
    assert not [name for name in os.listdir(folder) if name.startswith(".")]
    assert not [name for name in os.listdir(os.path.join(folder, "videos")) if "no_faces_crowd" in name]
    assert not [name for name in os.listdir(os.path.join(folder, "crops")) if "no_faces_crowd" in name]


TEST_PEOPLE = ("extra_man_hoodie", "identity_b")


@pytest.fixture(scope="module")
def detector(detect_data, tmp_path_factory):
    """The smoke detector trained by the command, tested on the hoodie man and identity_b: it
    trains on glasses->identity_a swaps and real faces of glasses and identity_a only."""
    folder, _, _ = detect_data
    model_dir = str(tmp_path_factory.mktemp("detector"))
    done = run_module("faceswap_tf.detect", "--flagfile=flags/detect_smoke.flags", f"--data_dir={folder}",
                      f"--model_dir={model_dir}", f"--test_identities={','.join(TEST_PEOPLE)}")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(model_dir, "report.json")) as handle:
        return model_dir, json.load(handle), done.stderr


def test_the_split_keeps_test_people_out_of_training_in_every_role(detect_data):
    from faceswap_tf.detect import manifest, samples

    folder, _, _ = detect_data
    every = samples.samples_of(folder, manifest.read(folder))
    parts = samples.split(every, frozenset(TEST_PEOPLE), 0.25)
    assert all(not s.people & set(TEST_PEOPLE) for s in parts.train + parts.validation)
    assert all(s.people <= set(TEST_PEOPLE) for s in parts.test)
    trained = frozenset().union(*(s.people for s in parts.train))
    assert trained == {"identity_a", "extra_man_glasses"}
    # The test set holds swaps of an unseen pair, and real faces of both its people.
    assert {s.people for s in parts.test} == {frozenset(TEST_PEOPLE), frozenset(["extra_man_hoodie"]),
                                              frozenset(["identity_b"])}
    # Validation frames come after the training frames of the same job.
    for job in {s.job for s in parts.validation}:
        assert max(s.frame for s in parts.train if s.job == job) < min(s.frame for s in parts.validation
                                                                          if s.job == job)


def test_calibration_people_are_kept_out_of_training_and_give_real_faces_only():
    from faceswap_tf.detect import samples
    from faceswap_tf.errors import UserError

    def sample(label, people, frame, job):
        return samples.Sample(f"{job}/{frame}", label, None, frozenset(people), job, frame, None)

    jobs = {"ab": ("a", "b"), "ac": ("a", "c"), "cd": ("c", "d"), "ef": ("e", "f")}
    every = [sample(label, people if label else people[:1], frame, job)
             for job, people in jobs.items() for frame in range(8) for label in (0, 1)]
    parts = samples.split(every, frozenset({"e", "f"}), 0.25, frozenset({"c"}))
    kept = parts.train + parts.validation
    assert all(s.people <= {"a", "b"} for s in kept)  # a's real faces from a->c too, but no swap with c
    assert {s.job for s in kept if s.label} == {"ab"} and {s.job for s in kept} == {"ab", "ac"}
    assert {s.job for s in parts.test} == {"ef"}
    assert parts.calibration and all(s.label == 0 and s.people == {"c"} for s in parts.calibration)
    assert {s.job for s in parts.calibration} == {"cd"}  # c's real faces, not a's from a->c
    assert [s.frame for s in parts.validation if s.label] == [6, 7]
    with pytest.raises(UserError, match="--calibration_identities: e also a test person"):
        samples.split(every, frozenset({"e", "f"}), 0.25, frozenset({"e"}))
    with pytest.raises(UserError, match="--calibration_identities: z not in the dataset"):
        samples.split(every, frozenset({"e", "f"}), 0.25, frozenset({"z"}))


def test_the_closed_mouth_shortcut_is_measured_on_real_faces_only():
    """`real_score_vs_mouth`: the real faces' scores against their mouth opening; swapped faces
    and faces without landmarks play no part."""
    from faceswap_tf.detect import samples, trainer

    rng = np.random.default_rng(0)
    mouths = rng.uniform(0.0, 0.4, 40)

    def part(scores, label=0, mouth=mouths):
        found = [samples.Sample(f"{i}", label, None, frozenset(["a"]), "j", i, None, None,
                                None if mouth is None else float(mouth[i])) for i in range(40)]
        return trainer._Part(found, None, np.full(40, float(label)), None), np.asarray(scores)

    closed_is_fake = 1.0 - 2.0 * mouths + rng.normal(0, 0.01, 40)
    assert trainer._mouth_shortcut(*part(closed_is_fake)) < -0.95
    assert abs(trainer._mouth_shortcut(*part(rng.uniform(0, 1, 40)))) < 0.4
    assert trainer._mouth_shortcut(*part(closed_is_fake, label=1)) is None  # no real faces
    assert trainer._mouth_shortcut(*part(closed_is_fake, mouth=None)) is None  # no landmarks
    assert trainer._mouth_shortcut(*part(closed_is_fake, mouth=np.zeros(40))) is None  # mouths never move


def test_a_video_whose_frames_are_flagged_is_judged_swapped_whatever_a_few_lower_frames_score():
    from faceswap_tf.detect import scorer, scores

    # Measured in the detect demo: the threshold near 1, 91% of a swap's frames above it, the
    # mean of the frames below it: the video was called real. The pooled score is the median.
    threshold = 0.9999
    frames = [{"frame": i, "score": s, "faces": 1} for i, s in enumerate([0.99995] * 9 + [0.5])]
    faces = [{"fake": f["score"] >= threshold} for f in frames]
    judged = scorer._summary("swap.mp4", "video", faces, frames, threshold)
    assert judged["verdict"] == "swapped" and judged["score"] == 0.99995
    assert np.mean([f["score"] for f in frames]) < threshold  # what the mean said
    assert scorer._summary("real.mp4", "video", faces[:1] * 3, [{"frame": i, "score": s, "faces": 1}
                           for i, s in enumerate([0.99995, 0.2, 0.1])], threshold)["verdict"] == "real"
    # The video AUC pools tracks the same way: a swapped track flagged in 6 of its 10 frames
    # ranks above a real one flagged in none (their means would rank them the other way).
    found = scores.summary([0.99995] * 6 + [0.0] * 4 + [0.7] * 3, [1] * 10 + [0] * 3,
                           ["fake"] * 10 + ["real"] * 3, threshold)
    assert found["video_auc"] == 1.0 and found["tracks"] == 2


def test_the_threshold_flags_the_validation_faces_it_must_from_the_middle_of_their_gap():
    """At most --max_false_positive of the validation real faces flagged, and of the thresholds
    that catch the same fakes, the one halfway (in log-odds) between the highest real score it
    must pass and the lowest fake score it catches: a stranger's real faces scoring a little
    above the training people's (measured: 2-27% of them flagged at the lowest threshold, README,
    Detect) are not flagged for it."""
    from faceswap_tf.detect import scores

    rng = np.random.default_rng(0)
    real = 1 / (1 + np.exp(-rng.normal(-9.0, 1.0, 400)))  # log-odds about -9
    fake = 1 / (1 + np.exp(-rng.normal(6.0, 1.0, 300)))
    fake[0] = 0.0  # a swap scored as real: missed at any threshold the real faces allow
    threshold = scores.threshold_for(real, 0.01, fake)
    passed = np.sort(real)[-5]  # 4 of 400 real faces may be flagged
    assert np.sum(real >= threshold) <= 4 and np.sum(fake >= threshold) == 299
    lowest = scores.threshold_for(real, 0.01)  # no fakes given: the lowest such threshold
    assert lowest == np.nextafter(passed, np.inf)
    assert np.sum(real >= lowest) == 4 and np.sum(fake >= lowest) == 299
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(logit(threshold), (logit(passed) + logit(np.sort(fake)[1])) / 2, rtol=1e-9)
    stranger = 1 / (1 + np.exp(-rng.normal(-5.0, 1.0, 400)))  # real faces 4 log-odds above them
    assert np.mean(stranger >= lowest) > 0.5 and np.mean(stranger >= threshold) < 0.01
    # Fakes that overlap the real faces leave no gap: the lowest threshold, the weakest fake caught.
    assert scores.threshold_for(real, 0.01, [np.nextafter(passed, np.inf)]) == lowest
    assert scores.threshold_for([], 0.01, fake) == 0.5

def test_mouth_matching_draws_real_and_swapped_faces_with_alike_mouths():
    """Swaps whose mouths open less than the real faces': drawn by `mouth_matching`'s weights,
    the mouth no longer tells the label, and `dataset` draws faces by those weights."""
    from faceswap_tf.detect import samples

    rng = np.random.default_rng(0)
    labels = np.repeat([0.0, 1.0], 400)
    mouths = np.concatenate([rng.uniform(0.0, 0.4, 400), rng.uniform(0.0, 0.4, 400) ** 2 * 2.5])
    before = samples.label_mouth_correlation(mouths, labels)
    weights = samples.mouth_matching(list(mouths), labels)
    after = samples.label_mouth_correlation(mouths, labels, weights)
    assert before < -0.3 and abs(after) < 0.1, (before, after)
    for label in (0, 1):
        assert weights[labels == label].mean() == pytest.approx(1.0)
    assert weights.max() <= 4.0 + 1e-9 and weights.min() > 0
    closed = mouths < np.quantile(mouths, 0.25)
    assert weights[(labels == 0) & closed].mean() > 1.5 > 0.8 > weights[(labels == 1) & closed].mean()
    # The stream: the real faces by weight (one weighs 9 of 12), the swapped ones likewise.
    images = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    drawn_weights = np.array([1, 1, 1, 9, 1, 1, 1, 1], np.float64)
    stream = samples.dataset(images, np.repeat([0.0, 1.0], 4), np.zeros((8, 8, 8, 1), np.float32), 16,
                             samples.AugmentConfig(jpeg=0, blur=0, resize=0, colour=0), 0, 0,
                             weights=drawn_weights)
    seen = np.concatenate([np.round(batch[0].numpy()[:, 4, 4, 0] * 255) for batch in stream.take(40)])
    share = np.bincount(seen.astype(int), minlength=8) / len(seen)
    assert 0.30 < share[3] < 0.45 and all(0.01 < s < 0.08 for s in share[:3]), share
    assert all(0.09 < s < 0.16 for s in share[4:]), share


def test_a_self_blended_face_differs_from_the_real_one_only_where_its_mask_says(detect_data):
    """Self-blended fakes: a real crop's altered copy pasted into it (or, cross-blended, another
    real crop's face). Outside the mask every pixel is the real face's; inside, the face changed;
    the mask lies on the face, not the frame."""
    import tensorflow as tf

    from faceswap_tf.detect import manifest, samples

    folder, _, _ = detect_data
    found = manifest.read(folder)
    framing = next(iter(found.jobs.values())).framing.with_view(1.0, 64)
    reals = [s for s in samples.samples_of(folder, found) if s.label == 0 and s.crf is None][:6]
    images, _, _ = samples.load(reals, framing)
    template = samples.template_mask(framing)
    assert 0.25 < template.mean() < 0.6 and template[32, 32] == 1 and template[:4].max() == 0
    tf.random.set_seed(0)
    changed_inside, changed_outside = [], []
    for image in images:
        for _ in range(4):
            blended, label, mask = samples.self_blended(tf.constant(image), tf.constant(template))
            blended, mask = blended.numpy().astype(int), mask.numpy()[..., 0]
            assert float(label) == 1.0 and blended.shape == image.shape and 0 <= mask.min() <= mask.max() <= 1
            assert mask[32, 32] > 0.5 and mask[:2].max() < 0.05  # on the face, not the frame's top
            difference = np.abs(blended - image).max(axis=-1)
            changed_outside.append(difference[mask == 0].max())
            changed_inside.append(difference[mask >= 0.5 * mask.max()].mean())
    assert max(changed_outside) == 0
    assert np.median(changed_inside) > 2.0, changed_inside
    # The training stream: half real, the other half self-blended when --self_blend=1.
    labels = np.r_[np.zeros(len(images)), np.ones(len(images))].astype(np.float32)
    both = np.concatenate([images, images])
    masks = np.zeros([len(both), 64, 64, 1], np.float32)
    masks[len(images):] = 1.0  # the swapped faces' masks: all ones, so self-blended ones stand out
    batch = next(iter(samples.dataset(both, labels, masks, 32, samples.AugmentConfig(), 0, 0, 1.0, template)))
    fakes = batch[1].numpy() == 1
    assert 4 <= fakes.sum() <= 28
    assert all(0 < m.mean() < 0.9 for m in batch[2].numpy()[fakes])  # none is a swapped face's mask
    # Cross-blends: another person's real crop pasted in, its colour matched to the face's (here
    # a darkened one, which pasted as it is would stand out), the change where the mask says.
    others = [s for s in samples.samples_of(folder, found) if s.label == 0 and s.crf is None
              and s.people != reals[0].people][:len(images)]
    for image, other in zip(images, samples.load(others, framing)[0], strict=True):
        donor = (other * 0.4).astype(np.uint8)
        face, hull = tf.constant(image), tf.constant(template)
        matched = samples._colour_matched(tf.constant(donor / 255.0, tf.float32), tf.constant(image / 255.0,
                                          tf.float32), hull).numpy() * 255.0
        blended, label, mask = samples.self_blended(face, hull, tf.constant(donor))
        blended, mask = blended.numpy().astype(float), mask.numpy()[..., 0]
        inside = mask >= 0.5 * mask.max()
        assert float(label) == 1.0 and np.abs(blended - image)[mask == 0].max() == 0
        change, wanted = (blended - image)[inside].ravel(), (matched - image)[inside].ravel()
        assert np.corrcoef(change, wanted)[0, 1] > 0.5, np.corrcoef(change, wanted)[0, 1]
        assert abs((blended - image)[inside].mean()) < 0.5 * abs((donor - image.astype(float))[inside].mean())
    batch = next(iter(samples.dataset(both, labels, masks, 32, samples.AugmentConfig(), 0, 0, template=template,
                                      cross_blend=1.0)))
    fakes = batch[1].numpy() == 1
    assert 4 <= fakes.sum() <= 28 and all(0 < m.mean() < 0.9 for m in batch[2].numpy()[fakes])


def test_the_identity_adversary_learns_who_and_the_features_are_trained_against_it(detect_data, tmp_path):
    """--identity_adversary: each training face carries the index of the person whose frame it is
    cut from (self-blended fakes their real face's); a head learns that person from the detached
    features, and the features are trained to leave it guessing. Left alone, the features tell
    the two training people apart (the head's loss falls far under a guess's); trained against
    it, they do not; the run records the people and resumes."""
    import tensorflow as tf

    from faceswap_tf.detect import manifest, samples, trainer
    from faceswap_tf.detect.model import DetectorModelConfig
    from faceswap_tf.errors import UserError

    folder, _, _ = detect_data
    found = manifest.read(folder)
    train = samples.split(samples.samples_of(folder, found), frozenset(TEST_PEOPLE), 0.25).train
    ids, names = samples.identity_indices(train)
    assert names == ["extra_man_glasses", "identity_a"]
    assert [names[i] for i in ids] == [s.source for s in train]
    with pytest.raises(UserError, match="its frame's person is not known"):
        samples.identity_indices(train[:3] + [dataclasses.replace(train[3], source=None)])
    framing = next(iter(found.jobs.values())).framing.with_view(1.0, 32)
    images, labels, masks = samples.load(train, framing)
    # The stream: each face with its own person's index, blended or not (no augmentation, so a
    # face is its crop, or, self-blended, its crop outside the blend mask).
    still = samples.AugmentConfig(jpeg=0, blur=0, resize=0, colour=0, flip=0)
    template = samples.template_mask(framing)
    batch = next(iter(samples.dataset(images, labels, masks, 32, still, 0, 0, 0.5, template, identities=ids)))
    assert len(batch) == 4
    for image, label, mask, who in zip(*(t.numpy() for t in batch), strict=True):
        image = np.round(image * 255.0)  # the stream's faces are float in [0, 1]
        outside = mask[..., 0] == 0 if label else np.ones(image.shape[:2], bool)
        nearest = np.argmin([np.abs(image[outside] - other[outside]).sum() for other in images])
        assert np.abs(image[outside] - images[nearest][outside]).max() <= 1
        assert who == ids[nearest], (names[who], names[ids[nearest]])

    shares = np.bincount(ids) / len(ids)
    guessing = float(-(shares * np.log(shares)).sum())  # the head's loss knowing only how many faces each has

    def head_loss(weight):
        """The head's cross-entropy over every training face (unaugmented) after 300 steps."""
        config = trainer.DetectConfig(folder, str(tmp_path / f"w{weight}"), TEST_PEOPLE, batch_size=16,
                                      model=DetectorModelConfig(resolution=32, width=8, blocks=2),
                                      identity_adversary=weight)
        record = trainer.DetectorRecord(config.model, framing, TEST_PEOPLE, 0.25, folder,
                                        identity_adversary=tuple(names))
        detector = trainer.DetectorTrainer(config, record)
        stream = iter(samples.dataset(images, labels, masks, 16, samples.AugmentConfig(), 0, 0, identities=ids))
        for _ in range(300):
            detector.train_step(*next(stream))
        features = detector.model(tf.constant(images, tf.float32) / 255.0, training=False)["features"]
        logits = detector.identity_head(features, training=False)
        return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits)))

    # Measured (two seeds): 0.04 and 0.12 left alone, 0.635 and 0.647 trained against at weight
    # 10, against 0.637 guessing (two thirds of these faces are the glasses man's).
    left_alone, trained_against = head_loss(0.0), head_loss(10.0)
    print(f"identity head's loss over the training faces after 300 steps: {left_alone:.3f} left alone, "
          f"{trained_against:.3f} trained against (guessing: {guessing:.3f})")
    assert left_alone < 0.4 * guessing, (left_alone, guessing)
    assert trained_against > 0.8 * guessing, (trained_against, guessing)
    # Through run(): the record names the people, the head is in the checkpoint, a resume goes on.
    small = dict(model=DetectorModelConfig(resolution=32, width=4, blocks=2), batch_size=8, save_every=2,
                 log_every=1, eval_every=0, identity_adversary=1.0)
    trainer.run(trainer.DetectConfig(folder, str(tmp_path / "run"), TEST_PEOPLE, steps=2, **small),
                log=io.StringIO())
    assert trainer.read_record(str(tmp_path / "run"))["identity_adversary"] == names
    log = io.StringIO()
    trainer.run(trainer.DetectConfig(folder, str(tmp_path / "run"), TEST_PEOPLE, steps=3, **small), log=log)
    assert "from step 2 to 3" in log.getvalue()
    with pytest.raises(UserError, match="identity_adversary"):
        trainer.run(trainer.DetectConfig(folder, str(tmp_path / "run"), TEST_PEOPLE, steps=4,
                                         **{**small, "identity_adversary": 0.0}), log=io.StringIO())
    with pytest.raises(UserError, match="--identity_adversary=-1.0: must be 0"):
        trainer.DetectConfig(folder, str(tmp_path / "m"), TEST_PEOPLE, identity_adversary=-1.0)


def test_an_ensemble_trains_each_member_on_its_own_batch_and_scores_with_the_mean_of_their_logits(
        detect_data, tmp_path):
    """--members=K: K networks of one shape, each from its own initial weights and learning from
    its own part of each batch alone; the detector's logit (and so the threshold, the report and
    the export) is the mean of theirs. A one-member run's record and checkpoints are as before."""
    import tensorflow as tf

    from faceswap_tf.detect import exporter, manifest, samples, trainer
    from faceswap_tf.detect.model import DetectorModelConfig, members_of
    from faceswap_tf.errors import UserError

    folder, _, _ = detect_data
    found = manifest.read(folder)
    framing = next(iter(found.jobs.values())).framing.with_view(1.0, 32)
    model = DetectorModelConfig(resolution=32, width=4, blocks=2, members=3)
    config = trainer.DetectConfig(folder, str(tmp_path / "unused"), TEST_PEOPLE, model=model, batch_size=4)
    record = trainer.DetectorRecord(model, framing, TEST_PEOPLE, 0.25, folder)
    train = samples.split(samples.samples_of(folder, found), frozenset(TEST_PEOPLE), 0.25).train
    images, labels, masks = samples.load(train[:12], framing)
    images = tf.constant(images, tf.float32) / 255.0

    def trained_once(batch_images):
        detector = trainer.DetectorTrainer(config, record)  # the same seed: the same initial weights
        before = [m.get_weights() for m in detector.members]
        detector.train_step(batch_images, tf.constant(labels, tf.float32), tf.constant(masks, tf.float32))
        return detector, before, [m.get_weights() for m in detector.members]

    detector, before, after = trained_once(images)
    assert len(detector.members) == 3
    assert not np.allclose(before[0][0], before[1][0])  # each its own initial weights
    out = detector.model(images, training=False)
    each = [m(images, training=False)["logit"].numpy() for m in detector.members]
    np.testing.assert_allclose(out["logit"].numpy(), np.mean(each, axis=0), atol=1e-5)
    masks_each = [m(images, training=False)["mask"].numpy() for m in detector.members]
    np.testing.assert_allclose(out["mask"].numpy(), np.mean(masks_each, axis=0), atol=1e-5)
    # Change only the second member's part of the batch (faces 4-7): only its step changes.
    changed = tf.concat([images[:4], tf.reverse(images[4:8], axis=[1]), images[8:]], axis=0)
    _, _, after_changed = trained_once(changed)
    for member, moved in enumerate([False, True, False]):
        same = all(np.array_equal(a, b) for a, b in zip(after[member], after_changed[member], strict=True))
        assert same != moved, member
        assert not all(np.array_equal(a, b) for a, b in zip(before[member], after[member], strict=True))

    # A one-member record leaves `members` out of its settings, as the runs written before it.
    assert "members" not in trainer.DetectorRecord(DetectorModelConfig(), framing, TEST_PEOPLE, 0.25,
                                                   folder).settings()["model"]
    with pytest.raises(UserError, match="--members=0: must be at least 1"):
        DetectorModelConfig(members=0)
    with pytest.raises(UserError, match="identity head reads one network"):
        trainer.DetectConfig(folder, str(tmp_path / "m"), TEST_PEOPLE, model=model, identity_adversary=1.0)

    # Through run(): recorded, resumed, a resume with another count refused, exported as one network.
    small = dict(model=dataclasses.replace(model, members=2), batch_size=8, save_every=2, log_every=1,
                 eval_every=0)
    model_dir = str(tmp_path / "run")
    trainer.run(trainer.DetectConfig(folder, model_dir, TEST_PEOPLE, steps=2, **small), log=io.StringIO())
    assert trainer.read_record(model_dir)["model"]["members"] == 2
    log = io.StringIO()
    report = trainer.run(trainer.DetectConfig(folder, model_dir, TEST_PEOPLE, steps=3, **small), log=log)
    assert "from step 2 to 3" in log.getvalue()
    with pytest.raises(UserError, match="members is the default, but .*ckpt-3 was trained with 2"):
        trainer.run(trainer.DetectConfig(folder, model_dir, TEST_PEOPLE, steps=4,
                                         **{**small, "model": dataclasses.replace(model, members=1)}),
                    log=io.StringIO())
    path = exporter.export(exporter.DetectorExportConfig(model_dir, "ensemble", str(tmp_path / "export")),
                           log=io.StringIO())
    served = tf.saved_model.load(path).signatures["serving_default"]
    faces = found.faces[:4]
    crops = np.concatenate([_crops_of(folder, faces, "real"), _crops_of(folder, faces, "fake")])
    reference = trainer.DetectorTrainer(
        trainer.DetectConfig(folder, model_dir, TEST_PEOPLE, **small),
        trainer.DetectorRecord(small["model"], framing, TEST_PEOPLE, 0.25, folder))
    assert reference.restore(io.StringIO()) == 3 and len(members_of(reference.model)) == 2
    paths = [os.path.join(folder, f.real) for f in faces] + [os.path.join(folder, f.fake) for f in faces]
    views, _, _ = samples.load([samples.Sample(p, 0, None, frozenset(), "j", 0, None) for p in paths], framing)
    views = tf.constant(views, tf.float32) / 255.0
    mean_logit = np.mean([m(views, training=False)["logit"].numpy()[:, 0] for m in reference.members], axis=0)
    np.testing.assert_allclose(served(faces=tf.constant(crops))["probability"].numpy(),
                               1.0 / (1.0 + np.exp(-mean_logit)), atol=1e-4)
    # The report measures each member alone as it measures the mean.
    assert len(report["members"]) == 2
    for member in report["members"]:
        assert 0.0 <= member["threshold"] <= 1.0
        assert member["groups"].keys() == report["groups"].keys()
        assert member["groups"]["unseen_pairs"]["faces"] == report["groups"]["unseen_pairs"]["faces"]
    assert report["members"][0]["groups"]["unseen_pairs"] != report["members"][1]["groups"]["unseen_pairs"]
    assert "member 1 alone: threshold" in "\n".join(trainer.report_lines(report))


def test_the_high_pass_view_is_the_face_less_its_blur_and_is_recorded():
    """--view=high_pass: the network's first layer reads the view less its Gaussian blur (as
    OpenCV blurs, reflecting at the borders), times the gain: nothing of a flat or smoothly lit
    patch, all of a sharp edge; the run's settings name the view only when it is not the RGB
    one, as the records written before it was an option."""
    import tensorflow as tf

    from faceswap_tf.detect import trainer
    from faceswap_tf.detect.model import DetectorModelConfig, HighPass, build_detector
    from faceswap_tf.errors import UserError
    from faceswap_tf.framing import Framing

    rng = np.random.default_rng(0)
    faces = rng.uniform(-1, 1, (2, 24, 24, 3)).astype(np.float32)
    out = HighPass(sigma=1.5, gain=4.0)(tf.constant(faces)).numpy()
    for face, got in zip(faces, out, strict=True):
        blurred = cv2.GaussianBlur(face, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(got, 4.0 * (face - blurred), atol=1e-5)
    ramp = np.broadcast_to(np.linspace(-1, 1, 24, dtype=np.float32)[None, :, None], (24, 24, 3))
    assert np.abs(HighPass()(tf.constant(ramp[None])).numpy()[0, :, 4:-4]).max() < 2e-3  # no detail
    edge = np.where(np.arange(24) < 12, -1.0, 1.0).astype(np.float32)[None, :, None] * np.ones((24, 1, 3))
    assert np.abs(HighPass()(tf.constant(edge[None], tf.float32)).numpy()).max() > 1.0
    network = build_detector(DetectorModelConfig(resolution=32, width=4, blocks=2, view="high_pass"))
    assert network.get_layer("high_pass") is not None
    # The network reads detail only: the same faces brighter by a constant score alike.
    views = rng.uniform(0.2, 0.7, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(network(views + 0.2)["logit"].numpy(), network(views)["logit"].numpy(),
                               atol=1e-4)
    framing = Framing(crop_size=256, padding=0.1, coverage=1.0, resolution=128)
    for view, recorded in (("rgb", None), ("high_pass", "high_pass")):
        record = trainer.DetectorRecord(DetectorModelConfig(view=view), framing, ("x",), 0.25, "d")
        assert record.settings()["model"].get("view") == recorded
        assert trainer.DetectorRecord.from_json(record.to_json(), "test").model.view == view
    with pytest.raises(UserError, match="--view=edges: choose rgb, high_pass"):
        DetectorModelConfig(view="edges")


def test_occluders_are_thin_sharp_strokes_that_cover_the_mask_where_they_lie():
    """--occlude: spectacle frames, ellipses and lines drawn over a face, real or swapped alike;
    the image changes only where the mask was lowered (the stroke covers the swap there), the
    strokes are thin (a small part of the view), and every drawing has at least one."""
    import tensorflow as tf

    from faceswap_tf.detect import samples

    tf.random.set_seed(0)
    image = tf.fill([64, 64, 3], 0.5)
    covered = []
    for _ in range(30):
        drawn, mask = samples.occluded(image, tf.ones([64, 64, 1]))
        drawn, mask = drawn.numpy(), mask.numpy()[..., 0]
        changed = np.abs(drawn - 0.5).max(axis=-1) > 1e-6
        assert 0.0 <= mask.min() and mask.max() <= 1.0 and 0.0 <= drawn.min() and drawn.max() <= 1.0
        # (alpha under 1e-4 may change the image by less than the tolerance, a stroke's faint edge)
        assert not (changed & (mask == 1.0)).any() and not (~changed & (mask < 1.0 - 1e-4)).any()
        covered.append(changed.mean())
    assert min(covered) > 0.0 and max(covered) < 0.25 and 0.005 < np.median(covered) < 0.12, covered
    # In the training stream both labels get them: with --occlude=1 every face, real or swapped.
    faces = np.full([8, 32, 32, 3], 128, np.uint8)
    labels = np.repeat([0.0, 1.0], 4).astype(np.float32)
    only_occluders = samples.AugmentConfig(jpeg=0, blur=0, resize=0, colour=0, flip=0, occlude=1.0)
    masks = np.ones([8, 32, 32, 1], np.float32)
    batch = next(iter(samples.dataset(faces, labels, masks, 16, only_occluders, 0, 0)))
    images, drawn_labels = batch[0].numpy(), batch[1].numpy()
    for label in (0.0, 1.0):
        # (a stroke differs from the grey by 0.1 or more in colour, opacity at least 0.6 at its core)
        assert all(np.abs(x - 128 / 255).max() > 0.01 for x in images[drawn_labels == label])


def test_a_reblended_fake_is_its_swap_on_one_side_of_a_line_and_its_real_crop_on_the_other(detect_data):
    """Re-blended fakes: the dataset's swap kept on one side of a feathered line, the real crop
    of the same face on the other, the mask cut the same way; the stream pairs each swap with its
    own real crop."""
    import tensorflow as tf

    from faceswap_tf.detect import manifest, samples

    folder, _, _ = detect_data
    found = manifest.read(folder)
    framing = next(iter(found.jobs.values())).framing.with_view(1.0, 64)
    every = samples.samples_of(folder, found)
    by_path = {s.path: s for s in every}
    fakes = [s for s in every if s.label == 1]
    assert all(s.pair in by_path and by_path[s.pair].label == 0 and (by_path[s.pair].job, by_path[s.pair].frame,
               by_path[s.pair].crf) == (s.job, s.frame, s.crf) for s in fakes)
    assert all(s.pair is None for s in every if s.label == 0)
    chosen = [s for s in fakes if s.crf is None][:6]
    fake_images, _, fake_masks = samples.load(chosen, framing)
    real_images, _, _ = samples.load([by_path[s.pair] for s in chosen], framing)
    tf.random.set_seed(0)
    kept_share = []
    for fake, real, mask in zip(fake_images, real_images, fake_masks, strict=True):
        assert np.abs(fake.astype(int) - real.astype(int)).max() > 20  # the swap changed the face
        for _ in range(4):
            face, label, cut = samples.reblended(tf.constant(fake), tf.constant(real), tf.constant(mask))
            face, cut = face.numpy().astype(int), cut.numpy()
            assert float(label) == 1.0 and face.shape == fake.shape and (cut <= mask + 1e-6).all()
            on_face = mask[..., 0] > 0.5 * mask.max()  # the smoke swapper's mask is about 0.5 inside
            region = cut[..., 0][on_face] / mask[..., 0][on_face]
            assert region.max() > 0.9 and region.min() < 0.1, "the line crosses the face"
            expected = fake[on_face] * region[:, None] + real[on_face] * (1.0 - region[:, None])
            assert np.abs(face[on_face] - expected).max() <= 1.0
            kept_share.append(cut.sum() / mask.sum())
    assert 0.1 < min(kept_share) and max(kept_share) < 0.95 and 0.3 < np.median(kept_share) < 0.7, kept_share
    # The training stream: with --reblend=1 every swapped face is cut; masks all ones show where.
    images = np.concatenate([real_images, fake_images])
    labels = np.r_[np.zeros(len(chosen)), np.ones(len(chosen))].astype(np.float32)
    masks = np.ones([len(images), 64, 64, 1], np.float32)
    pairs = np.r_[np.full(len(chosen), -1), np.arange(len(chosen))]
    batch = next(iter(samples.dataset(images, labels, masks, 32, samples.AugmentConfig(), 0, 0,
                                      reblend=1.0, pairs=pairs)))
    fakes_in_batch = batch[1].numpy() == 1
    assert 4 <= fakes_in_batch.sum() <= 28
    assert all(0.05 < m.mean() < 0.95 for m in batch[2].numpy()[fakes_in_batch])
    assert all(m.min() == 1.0 for m in batch[2].numpy()[~fakes_in_batch])


def test_the_detector_separates_swaps_of_people_it_never_saw(detector):
    from faceswap_tf.detect.trainer import report_lines

    model_dir, report, log = detector
    print("\n".join(report_lines(report)))
    assert "detector from step 0 to 80" in log
    assert re.search(r"mouth opening against the label in the training faces: correlation [+-]\d\.\d\d\n", log)
    groups = report["groups"]
    unseen, compressed = groups["unseen_pairs"], groups["unseen_pairs_crf35"]
    assert unseen["faces"] >= 40 and unseen["fakes"] >= 12 and unseen["tracks"] >= 6
    assert unseen["frame_auc"] >= 0.95, groups
    assert unseen["video_auc"] >= 0.95, groups
    assert compressed["frame_auc"] >= 0.9, groups
    # Whether the real faces' scores follow their mouths (the closed-mouth shortcut) is measured.
    assert -1.0 <= unseen["real_score_vs_mouth"] <= 1.0, unseen
    assert groups["validation"]["frame_auc"] >= 0.95
    for name in ("flags.txt", "config.json", "preview.png", "checkpoint", "ckpt-80.index"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    for board in ("train", "eval"):
        assert any(f.startswith("events.") for f in os.listdir(os.path.join(model_dir, board)))


@pytest.fixture(scope="module")
def detector_export(detector, tmp_path_factory):
    from faceswap_tf.detect import exporter

    model_dir, _, _ = detector
    export_dir = str(tmp_path_factory.mktemp("export"))
    return exporter.export(exporter.DetectorExportConfig(model_dir, "detector", export_dir), log=io.StringIO())


def _crops_of(folder, faces, kind, crf=None):
    paths = [getattr(f, kind) if crf is None else f.crf[str(crf)][kind] for f in faces]
    return np.stack([cv2.cvtColor(cv2.imread(os.path.join(folder, p)), cv2.COLOR_BGR2RGB) for p in paths])


def test_the_shortcuts_identity_and_compression_do_not_decide(detect_data, detector_export):
    """A real face of a person whose face the training swaps drew (identity_a) scores below
    swaps into a face trained on as real (identity_a's frames, B's face); compressed real
    faces score below uncompressed swaps and uncompressed real faces below compressed swaps."""
    from faceswap_tf.detect import manifest, scorer
    from faceswap_tf.detect.scores import auc

    folder, _, _ = detect_data
    found = manifest.read(folder)
    client = scorer.DetectorClient(detector_export)
    by_source = {job.source: name for name, job in found.jobs.items()}
    faces_of = {source: [f for f in found.faces if f.job == name] for source, name in by_source.items()}

    def scores(source, kind, crf=None):
        return client.probabilities(list(_crops_of(folder, faces_of[source], kind, crf)))

    def separation(fakes, reals):
        return auc(np.concatenate([fakes, reals]), np.r_[np.ones(len(fakes)), np.zeros(len(reals))])

    real_a = scores("identity_a", "real")
    swaps_into_a = scores("identity_a", "fake")  # identity_a's frames with identity_b's face
    assert separation(swaps_into_a, real_a) >= 0.9
    real_b = scores("identity_b", "real")
    assert separation(scores("extra_man_hoodie", "fake"), real_b) >= 0.9
    hoodie = {kind: {crf: scores("extra_man_hoodie", kind, crf) for crf in (None, 35)}
              for kind in ("real", "fake")}
    assert separation(hoodie["fake"][None], hoodie["real"][35]) >= 0.9
    assert separation(hoodie["fake"][35], hoodie["real"][None]) >= 0.9


TF_ONLY_CLIENT = r"""
import sys
import numpy as np
import tensorflow as tf
signatures = tf.saved_model.load(sys.argv[1]).signatures
faces = tf.constant(np.load(sys.argv[2]))
tensor = signatures["serving_default"](faces=faces)
pngs = tf.map_fn(tf.io.encode_png, faces, fn_output_signature=tf.string)
np.savez(sys.argv[3], probability=tensor["probability"], mask=tensor["mask"],
         png_probability=signatures["score_image_bytes"](image_bytes=pngs)["probability"],
         metadata=np.array(signatures["metadata"](request=tf.constant(0))["json"].numpy().decode()))
assert not [name for name in sys.modules if name.startswith("faceswap_tf")], "imported faceswap_tf"
"""


def test_tensorflow_alone_serves_the_detector_and_the_rest_protocol_answers_alike(
        detect_data, detector, detector_export, tmp_path):
    from faceswap_tf import signatures
    from faceswap_tf.detect import manifest, samples, trainer
    from tests.tf_serving_protocol import ProtocolServer

    folder, _, _ = detect_data
    found = manifest.read(folder)
    faces = found.faces[::9][:6]
    crops = np.concatenate([_crops_of(folder, faces, "real"), _crops_of(folder, faces, "fake")])
    np.save(tmp_path / "faces.npy", crops)
    done = subprocess.run([sys.executable, "-c", TF_ONLY_CLIENT, detector_export, str(tmp_path / "faces.npy"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    metadata = signatures.DetectorMetadata.from_json(str(out["metadata"]), "metadata")
    assert metadata.step == 80 and metadata.test_identities == list(TEST_PEOPLE)
    assert set(metadata.trained_on) == {"identity_a", "extra_man_glasses"}
    assert out["probability"].shape == (len(crops),) and out["mask"].shape == (len(crops), 16, 16, 1)
    np.testing.assert_allclose(out["png_probability"], out["probability"], atol=1e-6)

    # The reference: the trained Keras network restored by the trainer, on training's view of the crops.
    model_dir, report, _ = detector
    assert metadata.threshold == report["threshold"]
    record = json.load(open(os.path.join(model_dir, "config.json")))
    from faceswap_tf.detect.model import DetectorModelConfig
    from faceswap_tf.framing import Framing

    config = trainer.DetectConfig(folder, model_dir, TEST_PEOPLE, model=DetectorModelConfig(**record["model"]),
                                  validation=record["validation"])
    framing = Framing.from_json(record["framing"], "record")
    reference = trainer.DetectorTrainer(config, trainer.DetectorRecord(
        config.model, framing, TEST_PEOPLE, config.validation, folder))
    assert reference.restore(io.StringIO()) == 80
    paths = [os.path.join(folder, f.real) for f in faces] + [os.path.join(folder, f.fake) for f in faces]
    views, _, _ = samples.load([samples.Sample(p, 0, None, frozenset(), "j", 0, None) for p in paths], framing)
    np.testing.assert_allclose(out["probability"], reference.probabilities(views), atol=1e-4)

    version = int(os.path.basename(detector_export))
    with ProtocolServer({"detector": {version: detector_export}}) as server:
        base = f"{server.url}/v1/models/detector"
        answer = json.load(urllib.request.urlopen(base + "/metadata", timeout=30))
        signatures.check_signatures(signatures.of_serving_metadata(answer), base, contract=signatures.DETECTOR)
        with pytest.raises(signatures.ContractError, match="not a faceswap_tf swapper"):
            signatures.check_signatures({}, base)
        instances = [{"b64": base64.b64encode(cv2.imencode(".png", cv2.cvtColor(c, cv2.COLOR_RGB2BGR))[1]
                                              .tobytes()).decode()} for c in crops]
        body = json.dumps({"signature_name": "score_image_bytes", "instances": instances}).encode()
        request = urllib.request.Request(base + ":predict", method="POST", data=body,
                                         headers={"Content-Type": "application/json"})
        predictions = json.load(urllib.request.urlopen(request, timeout=60))["predictions"]
        np.testing.assert_allclose(np.array(predictions, np.float32).reshape(-1), out["probability"], atol=1e-6)


def test_the_scoring_tool_reports_faces_frames_and_the_video_and_labels_its_overlay(
        detect_data, detector_export, tmp_path):
    from faceswap_tf.convert import video
    from faceswap_tf.detect import manifest, scorer

    folder, _, _ = detect_data
    found = manifest.read(folder)
    job = next(j for j in found.jobs.values() if j.source == "extra_man_hoodie")
    swapped = os.path.join(folder, job.swapped_video)
    # The same pixels without the synthetic-media tags: the detector cannot read the label.
    untagged = str(tmp_path / "untagged.mp4")
    subprocess.run([video.imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", swapped, "-map_metadata", "-1",
                    "-c", "copy", untagged], check=True)
    assert video.read_metadata(untagged).get("synthetic_media") is None
    done = run_module("faceswap_tf.detect.score", f"--model={detector_export}", f"--input={swapped}",
                      f"--report={tmp_path / 'tagged.json'}", "--min_face_size=160", "--every_nth=2",
                      f"--overlay={tmp_path / 'overlay.mp4'}", f"--plot={tmp_path / 'plot.png'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "swapped (score" in done.stderr
    untagged_config = scorer.ScoreConfig(detector_export, untagged, str(tmp_path / "untagged.json"),
                                         every_nth=2, min_face_size=160)
    reports = {"tagged": json.load(open(tmp_path / "tagged.json")),
               "untagged": scorer.run(untagged_config, log=io.StringIO())}
    result = reports["tagged"]["inputs"][0]
    assert result["verdict"] == "swapped" and result["faces"] == result["frames"] == MAX_FRAMES // 2
    assert [f["probability"] for f in reports["untagged"]["inputs"][0]["face_scores"]] == \
        [f["probability"] for f in result["face_scores"]]
    assert video.read_metadata(str(tmp_path / "overlay.mp4")).get("analysis_product") == "true"
    assert cv2.imread(str(tmp_path / "plot.png")) is not None


def test_bad_inputs_to_the_scoring_tool_are_one_line(data_dir, smoke_export, detector_export, tmp_path):
    from faceswap_tf.detect import scorer
    from faceswap_tf.errors import UserError

    report = tmp_path / "report.json"
    done = run_module("faceswap_tf.detect.score", f"--model={detector_export}", f"--report={report}",
                      f"--input={data_path(data_dir, 'images', 'bad', 'dog.jpg')}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no face found" in lines[0], done.stderr
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    face = data_path(data_dir, "images", "faces", "biden2.jpg")
    for model, source, message in ((detector_export, str(cut), "cut.mp4: cannot read the video"),
                                   (os.path.join(smoke_export, "smoke"), face, "not a faceswap_tf detector")):
        with pytest.raises(UserError, match=message):
            scorer.run(scorer.ScoreConfig(model, source, str(report)), log=io.StringIO())
    assert not report.exists()


def test_bad_detector_settings_are_one_clear_error(detect_data, detector, smoke_model, tmp_path):
    from faceswap_tf.detect import exporter, trainer
    from faceswap_tf.detect.model import DetectorModelConfig
    from faceswap_tf.errors import UserError

    folder, _, _ = detect_data
    model_dir, _, _ = detector
    with pytest.raises(UserError, match="--test_identities: nobody not in the dataset"):
        trainer.run(trainer.DetectConfig(folder, str(tmp_path / "m"), ("nobody",)), log=io.StringIO())
    with pytest.raises(UserError, match="the train set would hold none"):
        trainer.run(trainer.DetectConfig(folder, str(tmp_path / "m"), ("identity_a", "extra_man_glasses",
                                                                        "extra_man_hoodie", "identity_b")),
                    log=io.StringIO())
    with pytest.raises(UserError, match="--self_blend=0.6 and --cross_blend=0.5: their sum"):
        trainer.DetectConfig(folder, str(tmp_path / "m"), TEST_PEOPLE, self_blend=0.6, cross_blend=0.5)
    with pytest.raises(UserError, match="--cross_blend=1.5: must be in"):
        trainer.DetectConfig(folder, str(tmp_path / "m"), TEST_PEOPLE, cross_blend=1.5)
    with pytest.raises(UserError, match="resolution is 32, but .* was trained with 64"):
        trainer.run(trainer.DetectConfig(folder, model_dir, TEST_PEOPLE, model=DetectorModelConfig(
            resolution=32, width=8, blocks=3)), log=io.StringIO())
    with pytest.raises(UserError, match="not a detector run"):
        exporter.export(exporter.DetectorExportConfig(smoke_model, export_dir=str(tmp_path)), log=io.StringIO())
    older = tmp_path / "older"  # a dataset built before the swapped faces' landmarks were kept
    older.mkdir()
    os.symlink(os.path.join(folder, "crops"), older / "crops")
    document = json.load(open(os.path.join(folder, "manifest.json")))
    for face in document["faces"]:
        face.pop("fake_landmarks")
    (older / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="--match_mouths: .*older/manifest.json lacks the landmarks"):
        trainer.run(trainer.DetectConfig(str(older), str(tmp_path / "m2"), TEST_PEOPLE, match_mouths=True),
                    log=io.StringIO())
    assert not os.path.exists(tmp_path / "m2")
    before = sorted(os.listdir(smoke_model))
    record = open(os.path.join(smoke_model, "config.json")).read()
    with pytest.raises(UserError, match="config.json: not a detector run"):
        trainer.run(trainer.DetectConfig(folder, smoke_model, TEST_PEOPLE), log=io.StringIO())
    assert sorted(os.listdir(smoke_model)) == before
    assert open(os.path.join(smoke_model, "config.json")).read() == record


def test_nan_never_reaches_a_checkpoint(detect_data, tmp_path, monkeypatch):
    import tensorflow as tf

    from faceswap_tf import trainer as gan_trainer
    from faceswap_tf.detect import trainer
    from faceswap_tf.detect.model import DetectorModelConfig

    folder, _, _ = detect_data
    small = dict(model=DetectorModelConfig(resolution=32, width=4, blocks=2), batch_size=8, save_every=2,
                 log_every=1, eval_every=0)
    config = trainer.DetectConfig(folder, str(tmp_path / "loss"), TEST_PEOPLE, steps=5, run_eagerly=True,
                                  **small)
    real_step = trainer.DetectorTrainer._train_step

    def poisoned(self, images, labels, masks):
        values, finite = real_step(self, images, labels, masks)
        return values, tf.logical_and(finite, self.step < 3)

    monkeypatch.setattr(trainer.DetectorTrainer, "_train_step", poisoned)
    with pytest.raises(gan_trainer.TrainingDiverged, match="NaN or Inf at step 3"):
        trainer.run(config, log=io.StringIO())
    assert sorted(n for n in os.listdir(tmp_path / "loss") if n.endswith(".index")) == ["ckpt-2.index"]
    monkeypatch.setattr(trainer.DetectorTrainer, "_train_step", real_step)
    monkeypatch.setattr(trainer.DetectorTrainer, "weights_finite", lambda self: False)
    config = trainer.DetectConfig(folder, str(tmp_path / "weights"), TEST_PEOPLE, steps=5, **small)
    with pytest.raises(gan_trainer.TrainingDiverged, match="weights became NaN or Inf by step 2"):
        trainer.run(config, log=io.StringIO())
    assert not [n for n in os.listdir(tmp_path / "weights") if n.startswith("ckpt-")]


def test_a_killed_detector_resumes_from_its_last_checkpoint(detect_data, tmp_path):
    folder, _, _ = detect_data
    model_dir = tmp_path / "model"
    args = [sys.executable, "-m", "faceswap_tf.detect", "--flagfile=flags/detect_smoke.flags",
            f"--data_dir={folder}", f"--model_dir={model_dir}", f"--test_identities={','.join(TEST_PEOPLE)}",
            "--save_every=10", "--eval_every=0", "--steps=100000"]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not (model_dir / "ckpt-20.index").exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (model_dir / "ckpt-20.index").exists()
    saved = max(int(name[5:-6]) for name in os.listdir(model_dir) if name.startswith("ckpt-") and
                name.endswith(".index"))
    done = run_module("faceswap_tf.detect", *args[3:-1], f"--steps={saved + 10}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"detector from step {saved} to {saved + 10}" in done.stderr
    assert (model_dir / f"ckpt-{saved + 10}.index").exists()
