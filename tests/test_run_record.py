"""The run record: written by train after a resume is accepted, read and checked by export and
evaluate, and the same settings kept inside every checkpoint."""

import dataclasses
import hashlib
import json
import os
import shutil

import pytest
import tensorflow as tf

from faceswap_tf import models, run_record, trainer
from faceswap_tf.errors import UserError
from tests.conftest import ROOT, data_path, run_module, tiny_config, tiny_view


def snapshot(folder) -> dict:
    """Every file below `folder` and a hash of its bytes."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


@pytest.fixture
def model_copy(smoke_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(smoke_model, copy)
    return str(copy)


def test_training_records_the_run_and_its_held_out_frames(smoke_model, face_dirs):
    record = run_record.read(smoke_model)
    assert record.framing == tiny_view() and record.holdout == 0.2 and record.model.width == 0.125
    assert record.runtime.policy == "float32" and record.runtime.replicas == 1
    (source, cut), = record.faces["a"].held_out_from.items()
    assert source.endswith("identity_a.mp4") and 280 <= cut <= 284  # the last fifth of 354 frames
    assert record.faces["a"].is_held_out(source, cut) and not record.faces["a"].is_held_out(source, cut - 1)
    assert record.faces["a"].is_held_out("/elsewhere.mp4", 0) is None
    latest = tf.train.latest_checkpoint(smoke_model)
    assert run_record.checkpoint_settings(latest) == json.loads(json.dumps(record.settings()))


@pytest.mark.parametrize("change, setting", [
    ({"model": models.ModelConfig(resolution=128, width=0.125, code_size=64)}, "resolution is 128"),
    ({"model": models.ModelConfig(core_resolution=32, width=0.125, code_size=64)}, "core_resolution is 32"),
    ({"holdout": 0.3}, "holdout is 0.3"),
    ({"coverage": 0.7}, "coverage is 0.7"),
])
def test_a_resume_with_other_settings_is_refused_and_changes_nothing(face_dirs, model_copy, change,
                                                                     setting):
    before = snapshot(model_copy)
    config = tiny_config(face_dirs, model_copy, steps=9)
    data_changes = {k: v for k, v in change.items() if k in ("holdout", "coverage")}
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, **data_changes),
                                 **{k: v for k, v in change.items() if k == "model"})
    with pytest.raises(UserError, match=f"{setting}, but .*ckpt-6 was trained with"):
        trainer.run(config, replay_flags="--steps=9\n")
    assert snapshot(model_copy) == before


def test_a_hand_edited_record_is_refused_by_train_export_and_evaluate(face_dirs, model_copy, data_dir,
                                                                      tmp_path):
    path = run_record.path_of(model_copy)
    document = json.load(open(path))
    document["holdout"] = 0.3  # as if to train on frames the model was evaluated on
    open(path, "w").write(json.dumps(document))
    before = snapshot(model_copy)
    clip = data_path(data_dir, "clips", "identity_a.mp4")
    for module, args in [
        ("faceswap_tf.train", [f"--flagfile={os.path.join(ROOT, 'flags', 'smoke.flags')}", "--steps=9",
                               f"--faces_a={face_dirs['a']}", f"--faces_b={face_dirs['b']}"]),
        ("faceswap_tf.export", ["--name=x", f"--export_dir={tmp_path / 'export'}"]),
        ("faceswap_tf.evaluate", [f"--original={clip}", f"--swapped={clip}", f"--faces_a={face_dirs['a']}",
                                  f"--faces_b={face_dirs['b']}", f"--output_dir={tmp_path / 'report'}"]),
    ]:
        done = run_module(module, f"--model_dir={model_copy}", *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
        assert lines[0].startswith(f"error: {path}: holdout is 0.3, but"), lines
        assert "ckpt-6 was trained with 0.2" in lines[0]
        assert snapshot(model_copy) == before
    assert not os.path.exists(tmp_path / "export") or not os.listdir(tmp_path / "export")
    assert not os.path.exists(tmp_path / "report") or not os.listdir(tmp_path / "report")


def test_a_record_from_another_version_or_a_broken_one_is_one_clear_error(model_copy):
    path = run_record.path_of(model_copy)
    for text, message in [('{"model": {}, "coverage": 0.85}', "not a faceswap_tf run record"),
                          ("{", "unreadable"), ('{"format": "faceswap_tf.run", "version": 2}', "malformed")]:
        open(path, "w").write(text)
        with pytest.raises(UserError, match=f"{path}: {message}"):
            run_record.read_checked(model_copy)


def test_faces_framed_differently_cannot_train_together(face_dirs, tmp_path):
    from faceswap_tf.faces import alignments

    other = tmp_path / "faces_b"
    shutil.copytree(face_dirs["b"], other)
    records = alignments.load(str(other / alignments.FILE_NAME))
    alignments.save(str(other / alignments.FILE_NAME), [dataclasses.replace(r, padding=0.3) for r in records])
    with pytest.raises(UserError, match="different --size or --padding"):
        run_record.RunRecord.for_training(models.ModelConfig(), face_dirs["a"], str(other), 0.85, 0.2, 0)
