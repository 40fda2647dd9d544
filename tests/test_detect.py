"""The detect stage on smoke-sized data: labelled fakes from the smoke swapper, a detector
trained on some identities and measured on others, its export, and the scoring tool."""

import io
import json
import os

import cv2
import numpy as np
import pytest

from tests.conftest import data_path, run_module

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
    assert by_source["identity_a"].first_frame == record.faces["a"].held_out_from[os.path.abspath(clips["identity_a"])]
    assert by_source["identity_a"].held_out and not by_source["extra_man_hoodie"].held_out
    assert by_source["extra_man_hoodie"].target == "identity_b" and by_source["extra_man_glasses"].target == "identity_a"
    assert all(job.step == 6 and job.crfs == (35,) for job in found.jobs.values())
    per_job = {name: sum(face.job == name for face in found.faces) for name in found.jobs}
    assert all(MAX_FRAMES // 2 <= count <= MAX_FRAMES for count in per_job.values()), per_job
    for face in found.faces[::7]:
        job = found.jobs[face.job]
        assert face.frame >= job.first_frame
        real, fake = (cv2.imread(os.path.join(folder, getattr(face, k))) for k in ("real", "fake"))
        mask = cv2.imread(os.path.join(folder, face.mask), cv2.IMREAD_GRAYSCALE)
        assert real.shape == fake.shape == (256, 256, 3) and mask.shape == (256, 256)
        inside, outside = mask > 100, mask == 0  # the 6-step mask is about 0.5 inside the view
        assert inside.mean() > 0.05 and outside.mean() > 0.05
        diff = np.abs(real.astype(int) - fake.astype(int)).mean(axis=2)
        # The swap changed the face where the mask says, and left the rest alone (up to resampling).
        assert diff[inside].mean() > 5 * max(diff[outside].mean(), 0.5)
        for kind in ("real", "fake"):
            assert os.path.exists(os.path.join(folder, face.crf["35"][kind]))
    swapped = os.path.join(folder, by_source["identity_a"].swapped_video)
    from faceswap_tf.convert import video
    assert video.read_metadata(swapped).get("synthetic_media") == "true"


def test_a_rerun_adds_only_what_is_missing_and_a_killed_run_leaves_a_valid_manifest(detect_data, smoke_model):
    from faceswap_tf.detect import fakes, manifest

    folder, jobs, _ = detect_data
    before = open(manifest.path_of(folder)).read()
    log = io.StringIO()
    fakes.build(fakes.DatasetConfig(folder, tuple(jobs), crfs=(35,), max_frames=MAX_FRAMES, min_face_size=160),
                log=log)
    assert log.getvalue().count("already in the dataset") == 4
    assert open(manifest.path_of(folder)).read() == before
    assert not [name for name in os.listdir(folder) if name.startswith(".")]
