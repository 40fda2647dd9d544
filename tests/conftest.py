"""Shared fixtures: the real sample data, read by path, never copied into the repository."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("FACESWAP_DATA", os.path.join(ROOT, "..", "shared", "data"))


@pytest.fixture(scope="session")
def data_dir():
    if not os.path.isdir(DATA_DIR):
        pytest.skip(f"sample data folder {DATA_DIR} is absent (set FACESWAP_DATA)")
    return DATA_DIR


def data_path(data_dir, *parts):
    path = os.path.join(data_dir, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent from the sample data")
    return path


def run_module(module, *args, timeout=600):
    """Runs `python -m module args...` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
