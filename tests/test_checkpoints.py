"""A training run's checkpoints under faults: a lost index file, damaged checkpoints, saves
cut short by a kill or a full disk, and weights that became NaN; none may cost the previous
good state."""

import io
import os
import resource
import shutil

import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf import checkpoints, exporter, losses, trainer
from faceswap_tf.errors import UserError
from tests.conftest import tiny_config
from tests.test_run_record import snapshot


@pytest.fixture
def model_copy(smoke_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(smoke_model, copy)
    return str(copy)


def truncate(path, keep=0.5):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])


def flip_a_bit(path, where=0.5):
    data = bytearray(open(path, "rb").read())
    data[int(len(data) * where)] ^= 0x10
    open(path, "wb").write(bytes(data))


def data_file(model_dir, step):
    return os.path.join(model_dir, f"ckpt-{step}.data-00000-of-00001")


@pytest.mark.parametrize("index", [None, "", "model_checkpoint_path: {{{ garbage"])
def test_a_lost_or_garbage_index_file_resumes_from_the_newest_checkpoint(face_dirs, model_copy, index):
    path = os.path.join(model_copy, checkpoints.INDEX_FILE)
    os.remove(path)
    if index is not None:
        open(path, "w").write(index)
    log = io.StringIO()
    assert trainer.run(tiny_config(face_dirs, model_copy, steps=6), log=log) == {}
    lines = log.getvalue().splitlines()
    assert lines[0] == (f"warning: {path}: {'missing' if index is None else 'unreadable'}; "
                        "found ckpt-6, ckpt-3 by listing the folder"), lines
    assert lines[-1] == f"{model_copy}: already at step 6 of 6"
    # The index names them again, and the checkpoints of the run are all still there.
    assert tf.train.latest_checkpoint(model_copy) == os.path.join(model_copy, "ckpt-6")
    assert checkpoints.listed(model_copy) == [os.path.join(model_copy, f"ckpt-{s}") for s in (6, 3)]


@pytest.mark.parametrize("damage", [
    lambda m: truncate(data_file(m, 6)),
    lambda m: flip_a_bit(data_file(m, 6)),
    lambda m: truncate(os.path.join(m, "ckpt-6.index"), 0.3),
    lambda m: os.remove(data_file(m, 6)),
], ids=["truncated", "bit-flipped", "truncated-index", "data-missing"])
def test_a_damaged_checkpoint_falls_back_to_the_one_before_with_a_warning(face_dirs, model_copy, damage):
    damage(model_copy)
    log = io.StringIO()
    gan = trainer.GanTrainer(tiny_config(face_dirs, model_copy), record=trainer.record_of(
        tiny_config(face_dirs, model_copy)))
    assert gan.restore(log) == 3
    warning, = log.getvalue().splitlines()
    assert warning.startswith(f"warning: {model_copy}/ckpt-6: unreadable checkpoint (")
    assert warning.endswith("); trying the one before")
    assert gan.weights_finite()


def test_export_falls_back_too_and_so_does_the_run_record_check(model_copy, tmp_path):
    truncate(data_file(model_copy, 6))
    log = io.StringIO()
    path = exporter.export(exporter.ExportConfig(model_copy, "fallback", export_dir=str(tmp_path / "export")),
                           log=log)
    assert os.path.basename(path) == "3"
    assert f"warning: {model_copy}/ckpt-6: unreadable checkpoint" in log.getvalue()


def test_with_no_readable_checkpoint_training_refuses_rather_than_start_over(face_dirs, model_copy):
    for step in (3, 6):
        truncate(data_file(model_copy, step))
    os.remove(os.path.join(model_copy, checkpoints.INDEX_FILE))
    before = snapshot(model_copy)
    with pytest.raises(UserError, match=f"{model_copy}: none of its 2 checkpoints can be used .*move them"):
        trainer.run(tiny_config(face_dirs, model_copy, steps=9), log=io.StringIO())
    assert snapshot(model_copy) == before
    with pytest.raises(UserError, match="none of its 2 checkpoints can be used"):
        exporter.export(exporter.ExportConfig(model_copy, "x", export_dir=os.path.dirname(model_copy)))


def test_leftovers_of_killed_saves_and_workers_are_swept(face_dirs, model_copy):
    for leftover in ("ckpt-9_temp", ".worker1"):
        os.makedirs(os.path.join(model_copy, leftover))
        with open(os.path.join(model_copy, leftover, "part-00000-of-00001.data-00000-of-00001"), "wb") as out:
            out.write(b"x" * 99)
    log = io.StringIO()
    trainer.run(tiny_config(face_dirs, model_copy, steps=6), log=log)
    assert f"note: {model_copy}: removed ckpt-9_temp, left by a save that did not finish" in log.getvalue()
    assert not os.path.exists(os.path.join(model_copy, "ckpt-9_temp"))
    assert not os.path.exists(os.path.join(model_copy, ".worker1"))


def test_a_full_disk_during_a_save_keeps_the_last_checkpoint_and_leaves_no_temp(face_dirs, model_copy):
    config = tiny_config(face_dirs, model_copy, steps=7, save_every=1, preview_every=100, run_eagerly=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # A checkpoint's data file is about 10 MB; the record, flags.txt and events are far smaller.
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, hard))
    try:
        with pytest.raises(UserError) as raised:
            trainer.run(config, log=io.StringIO())
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(raised.value)
    assert message.startswith(f"{model_copy}: the checkpoint of step 7 could not be saved (")
    assert "File too large" in message and message.endswith(f"the last one ({model_copy}/ckpt-6) is kept")
    assert "\n" not in message
    assert not [name for name in os.listdir(model_copy) if name.endswith("_temp")]
    assert checkpoints.newest_readable(model_copy) == os.path.join(model_copy, "ckpt-6")
    assert tf.train.latest_checkpoint(model_copy) == os.path.join(model_copy, "ckpt-6")


def test_a_non_finite_gradient_with_a_finite_loss_never_reaches_a_checkpoint(face_dirs, model_copy,
                                                                            monkeypatch):
    real_mask_l1 = losses.mask_l1

    @tf.custom_gradient
    def poisoned(mask):  # the same loss value, a NaN gradient
        def gradient(upstream):
            return tf.fill(tf.shape(mask), float("nan")) * upstream
        return real_mask_l1(mask), gradient

    monkeypatch.setattr(losses, "mask_l1", poisoned)
    config = tiny_config(face_dirs, model_copy, steps=8, save_every=1, log_every=1, preview_every=100,
                         run_eagerly=True)
    log = io.StringIO()
    with pytest.raises(trainer.TrainingDiverged) as raised:
        trainer.run(config, log=log)
    assert "step 7/8" in log.getvalue()  # the loss of step 7 was finite
    assert str(raised.value) == (
        f"{model_copy}: weights became NaN or Inf by step 7 although the losses were finite (a non-finite "
        f"gradient); not saved: the last good checkpoint ({model_copy}/ckpt-6) is kept: lower --learning_rate "
        "or turn off mixed precision")
    assert checkpoints.listed(model_copy)[0].endswith("ckpt-6")
    monkeypatch.setattr(losses, "mask_l1", real_mask_l1)
    gan = trainer.GanTrainer(tiny_config(face_dirs, model_copy))
    assert gan.restore() == 6 and gan.weights_finite()
    assert all(np.isfinite(v.numpy()).all() for v in gan.g_variables + gan.d_variables)
