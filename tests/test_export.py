"""The export stage: SavedModel versions, their signatures, fidelity to the Keras networks."""

import dataclasses
import glob
import io
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf import data, exporter, models, run_record, trainer
from faceswap_tf.errors import UserError
from faceswap_tf.faces import alignments
from faceswap_tf.signatures import ASSET_NAME, SwapperMetadata
from tests.conftest import run_module, tiny_config, tiny_view

# Runs in a fresh process that imports TensorFlow and nothing of faceswap_tf.
TF_ONLY_CLIENT = r"""
import json, sys
import numpy as np
import tensorflow as tf
path, faces_npy, out_npz = sys.argv[1:4]
model = tf.saved_model.load(path)
faces = np.load(faces_npy)
out = model.signatures["serving_default"](faces=tf.constant(faces))
pngs = [tf.io.encode_png(face).numpy() for face in faces]
encoded = model.signatures["swap_image_bytes"](image_bytes=tf.constant(pngs))
meta = model.signatures["metadata"](request=tf.constant(0))["json"].numpy().decode()
np.savez(out_npz, swapped=out["swapped"].numpy(), mask=out["mask"].numpy(), rgb=out["rgb"].numpy(),
         swapped_png=np.stack([tf.io.decode_png(b).numpy() for b in encoded["swapped_bytes"].numpy()]),
         mask_png=np.stack([tf.io.decode_png(b).numpy() for b in encoded["mask_bytes"].numpy()]),
         metadata=np.array(meta))
assert not any(name.startswith("faceswap_tf") for name in sys.modules), "imported faceswap_tf"
"""


def aligned_crops(face_dir, count=5):
    files = sorted(glob.glob(os.path.join(face_dir, "*.png")))
    picks = np.linspace(0, len(files) - 1, count).astype(int)
    return np.stack([cv2.cvtColor(cv2.imread(files[i]), cv2.COLOR_BGR2RGB) for i in picks])


@pytest.fixture(scope="module")
def exported(smoke_model, tmp_path_factory):
    export_dir = tmp_path_factory.mktemp("export")
    path = exporter.export(exporter.ExportConfig(smoke_model, "smoke", export_dir=str(export_dir)))
    return path


def test_a_version_is_numbered_by_the_training_step(exported, smoke_model):
    assert os.path.basename(exported) == "6"
    assert os.path.exists(os.path.join(exported, "assets", ASSET_NAME))
    config = open(os.path.join(os.path.dirname(os.path.dirname(exported)), "models.config")).read()
    assert 'name: "smoke"' in config and f'base_path: "{os.path.dirname(exported)}"' in config


def test_tensorflow_alone_loads_it_and_it_matches_the_keras_networks(exported, smoke_model, face_dirs,
                                                                      tmp_path):
    crops = aligned_crops(face_dirs["a"])
    np.save(tmp_path / "faces.npy", crops)
    result = subprocess.run([sys.executable, "-c", TF_ONLY_CLIENT, exported, str(tmp_path / "faces.npy"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")

    # The reference: the trained Keras networks restored by the trainer, on the same crops.
    gan = trainer.GanTrainer(tiny_config(face_dirs, smoke_model))
    assert gan.restore() == 6
    metadata = SwapperMetadata.from_json(str(out["metadata"]), "metadata")
    framing = metadata.framing
    rgb, mask, _ = gan.reconstruct("b", framing.tf_to_view(tf.constant(crops)))
    reference = framing.tf_blend(tf.constant(crops), rgb, mask)

    assert out["swapped"].shape == crops.shape and out["swapped"].dtype == np.uint8
    assert np.abs(out["swapped"].astype(int) - reference["swapped"].numpy()).max() <= 1
    assert np.abs(out["rgb"].astype(int) - reference["rgb"].numpy()).max() <= 1
    assert np.abs(out["mask"] - reference["mask"].numpy()).max() <= 1 / 255
    assert out["mask"].min() >= 0 and out["mask"].max() <= 1
    # The swap changed the face and left the crop's corners (outside the coverage) alone.
    assert np.abs(out["swapped"].astype(int) - crops).mean() > 1
    np.testing.assert_array_equal(out["swapped"][:, :10, :10], crops[:, :10, :10])
    # The bytes signature gives the same pixels, losslessly.
    np.testing.assert_array_equal(out["swapped_png"], out["swapped"])
    assert np.abs(out["mask_png"][..., 0] / 255.0 - out["mask"][..., 0]).max() <= 0.5 / 255 + 1e-6
    assert metadata.direction == "a_to_b" and metadata.step == 6
    assert metadata.source == "identity_a" and metadata.target == "identity_b"
    assert metadata.framing == tiny_view()
    assert len(metadata.template_points) == 68


def test_the_saved_model_sees_faces_as_training_did(face_dirs):
    """Its view of a crop (the centre coverage at the model's resolution) is the one the
    networks were trained on, to within interpolation rounding."""
    crops = aligned_crops(face_dirs["a"], count=3)
    records = {r.file: r for r in alignments.load(os.path.join(face_dirs["a"], alignments.FILE_NAME))}
    files = sorted(glob.glob(os.path.join(face_dirs["a"], "*.png")))
    picks = [os.path.basename(files[i]) for i in np.linspace(0, len(files) - 1, 3).astype(int)]
    training_view = np.stack([data.model_view(crop, records[name], tiny_view())[..., :3]
                              for crop, name in zip(crops, picks, strict=True)])
    view = (tiny_view().tf_to_view(tf.constant(crops)).numpy() + 1.0) * 127.5
    assert np.abs(view - training_view).max() < 1.0


def test_saved_model_cli_lists_the_signatures(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip(f"{cli} is not installed beside this Python")
    shown = subprocess.run([cli, "show", "--dir", exported, "--all"], capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("signature_def['serving_default']", "signature_def['swap_image_bytes']",
                 "signature_def['metadata']", "inputs['faces']", "shape: (-1, 256, 256, 3)",
                 "inputs['image_bytes']", "outputs['swapped_bytes']", "outputs['mask_bytes']"):
        assert name in shown.stdout, name


def test_exporting_twice_gives_two_versions_and_an_interrupted_export_leaves_none(
        smoke_model, tmp_path, monkeypatch):
    config = exporter.ExportConfig(smoke_model, "twice", export_dir=str(tmp_path))
    # What exports killed earlier left: named after a process that has gone, or (older
    # versions) unnamed and untouched for hours. The next export sweeps them.
    for leftover in (".partial-999999999-k1ll3d", ".partial-w6yy1l3m"):
        os.makedirs(tmp_path / "twice" / leftover / "saved_model")
    os.utime(tmp_path / "twice" / ".partial-w6yy1l3m", (time.time() - 7200,) * 2)
    first, second = exporter.export(config), exporter.export(config)
    assert (os.path.basename(first), os.path.basename(second)) == ("6", "7")
    assert exporter.export(dataclasses.replace(config, reuse=True)) == second  # nothing new

    real_save = tf.saved_model.save

    class Killed(BaseException):
        pass

    def save_then_die(module, path, signatures):
        real_save(module, path, signatures=signatures)  # a complete SavedModel, not yet placed
        raise Killed

    monkeypatch.setattr(tf.saved_model, "save", save_then_die)
    with pytest.raises(Killed):
        exporter.export(config)
    assert sorted(os.listdir(tmp_path / "twice")) == ["6", "7"]
    assert exporter.versions(str(tmp_path / "twice")) == [6, 7]
    with pytest.raises(UserError, match="exists; versions are never overwritten"):
        exporter.export(exporter.ExportConfig(smoke_model, "twice", export_dir=str(tmp_path), version=6))


def test_export_cli_and_its_errors(smoke_model, tmp_path):
    done = run_module("faceswap_tf.export", f"--model_dir={smoke_model}", "--name=cli",
                      "--direction=b_to_a", f"--export_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"to {tmp_path}/cli/6" in done.stderr
    meta = json.load(open(tmp_path / "cli" / "6" / "assets" / ASSET_NAME))
    assert meta["direction"] == "b_to_a" and meta["source"] == "identity_b"

    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [
        ([f"--model_dir={empty}", "--name=x"], f"{empty}: no config.json"),
        ([f"--model_dir={smoke_model}", "--name=../x"], "--name=../x: use letters"),
    ]:
        failed = run_module("faceswap_tf.export", *args, f"--export_dir={tmp_path}")
        assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr[-2000:]
        assert message in failed.stderr.strip().splitlines()[-1]
    assert sorted(os.listdir(tmp_path)) == ["cli", "empty", "models.config"]


def test_a_model_dir_without_a_checkpoint_is_one_clear_error(face_dirs, tmp_path):
    run_record.write(str(tmp_path), trainer.record_of(tiny_config(face_dirs, tmp_path)))
    with pytest.raises(UserError, match=f"{tmp_path}: no checkpoint; train first"):
        exporter.build_swapper(str(tmp_path), "a_to_b")


def test_a_live_exports_partial_folder_is_left_alone(tmp_path):
    live, recent = f".partial-{os.getpid()}-l1ve", ".partial-n0tnamed"
    for name in (live, recent, ".partial-999999999-k1ll3d"):
        (tmp_path / name).mkdir()
    exporter._sweep_partials(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([live, recent])


def test_an_export_dir_that_cannot_be_written_is_one_clear_error_before_any_work(smoke_model, tmp_path):
    from tests.test_files import unwritable_folder

    afile = tmp_path / "afile"
    afile.write_text("x")
    read_only = unwritable_folder(tmp_path)
    for export_dir, problem in [(afile, "is under"), (read_only, "cannot write in")]:
        with pytest.raises(UserError, match=f"--export_dir={export_dir}/x: {problem}"):
            exporter.export(exporter.ExportConfig(smoke_model, "x", export_dir=str(export_dir)))


def test_a_model_with_a_half_size_core_trains_exports_and_swaps_at_its_full_resolution(face_dirs, tmp_path):
    """--resolution=128 --core_resolution=64 end to end: the run record says so, the faces are
    trained and the export maps the 128 px view to and from the crops as the networks drew it."""
    model = models.ModelConfig(resolution=128, core_resolution=64, width=0.125, code_size=64)
    config = tiny_config(face_dirs, tmp_path / "model", model=model, steps=2, save_every=2, preview_every=2)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, resolution=128))
    trainer.run(config, log=io.StringIO())
    record = run_record.read(config.model_dir)
    assert record.model.core_resolution == 64 and record.framing.resolution == 128
    export_dir = str(tmp_path / "export")
    path = exporter.export(exporter.ExportConfig(config.model_dir, "folded", export_dir=export_dir))
    crops = aligned_crops(face_dirs["a"], count=2)
    out = tf.saved_model.load(path).signatures["serving_default"](faces=tf.constant(crops))

    gan = trainer.GanTrainer(config)
    assert gan.restore() == 2
    framing = record.framing
    rgb, mask, _ = gan.reconstruct("b", framing.tf_to_view(tf.constant(crops)))
    assert rgb.shape == (2, 128, 128, 3) and mask.shape == (2, 128, 128, 1)
    reference = framing.tf_blend(tf.constant(crops), rgb, mask)
    assert out["swapped"].shape == crops.shape
    assert np.abs(out["swapped"].numpy().astype(int) - reference["swapped"].numpy()).max() <= 1
    assert np.abs(out["swapped"].numpy().astype(int) - crops).mean() > 1
