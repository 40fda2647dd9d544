"""Shared fixtures: the real sample data, read by path, never copied into the repository."""

import io
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Absolute: the Makefile's default is relative, and some tests run commands in other folders.
DATA_DIR = os.path.abspath(os.environ.get("FACESWAP_DATA", os.path.join(ROOT, "..", "shared", "data")))


# CI (`.ci/run`, or any run with CI or FACESWAP_REQUIRE_DATA set) must not pass by skipping:
# there, missing sample data fails every test that needs it.
REQUIRE_DATA = bool(os.environ.get("FACESWAP_REQUIRE_DATA") or os.environ.get("CI"))


def data_missing(reason: str):
    if REQUIRE_DATA:
        pytest.fail(f"{reason}; CI needs the sample data", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir():
    if not os.path.isdir(DATA_DIR):
        data_missing(f"sample data folder {DATA_DIR} is absent (set FACESWAP_DATA)")
    return DATA_DIR


def data_path(data_dir, *parts):
    path = os.path.join(data_dir, *parts)
    if not os.path.exists(path):
        data_missing(f"{path} is absent from the sample data")
    return path


def run_module(module, *args, timeout=600):
    """Runs `python -m module args...` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


@pytest.fixture(scope="session")
def face_dirs(tmp_path_factory, data_dir):
    """Aligned faces of every 10th frame of the sample pair, extracted for real."""
    from faceswap_tf import extractor
    from faceswap_tf.faces import detect

    dirs = {}
    for side, clip in (("a", "identity_a.mp4"), ("b", "identity_b.mp4")):
        out = tmp_path_factory.mktemp(f"faces_{side}")
        extractor.run(extractor.ExtractConfig(
            input=data_path(data_dir, "clips", clip), output_dir=str(out), every_nth=10,
            largest_face=True, detector=detect.DetectorConfig(min_face_size=160),
        ), log=io.StringIO())
        dirs[side] = str(out)
    return dirs


def tiny_view():
    """The framing of the tiny models' faces: the extracted 256 px crops, padding 0.2, seen
    at 64 px with the default coverage."""
    from faceswap_tf.framing import Framing

    return Framing(crop_size=256, padding=0.2, coverage=0.85, resolution=64)


def tiny_config(face_dirs, model_dir, **overrides):
    """A training config of a tiny model on the extracted pair, for tests."""
    from faceswap_tf import data, models, trainer

    settings = dict(model=models.ModelConfig(width=0.125, code_size=64), mixed_precision="off",
                    save_every=3, log_every=3, preview_every=3, eval_every=0, steps=3)
    return trainer.TrainConfig(
        model_dir=str(model_dir),
        data=data.DataConfig(face_dirs["a"], face_dirs["b"], batch_size=4),
        **{**settings, **overrides},
    )


@pytest.fixture(scope="session")
def smoke_model(face_dirs, tmp_path_factory):
    """A model_dir holding a tiny model trained 6 steps on the sample pair."""
    from faceswap_tf import trainer

    model_dir = tmp_path_factory.mktemp("smoke_model")
    trainer.run(tiny_config(face_dirs, model_dir, steps=6), log=io.StringIO())
    return str(model_dir)


@pytest.fixture(scope="session")
def smoke_export(smoke_model, tmp_path_factory):
    """An export folder holding the smoke model as export/smoke/6."""
    from faceswap_tf import exporter

    export_dir = tmp_path_factory.mktemp("export")
    exporter.export(exporter.ExportConfig(smoke_model, "smoke", export_dir=str(export_dir)))
    return str(export_dir)
