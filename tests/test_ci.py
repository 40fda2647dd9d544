"""CI cannot pass having tested nothing: without the sample data it fails, not skips."""

import os
import subprocess
import sys

from tests.conftest import ROOT

NEEDS_DATA = "tests/faces/test_detect.py::test_downscaled_detection_gives_the_same_landmarks"


def pytest_run(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "FACESWAP_REQUIRE_DATA")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", NEEDS_DATA],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**clean, "FACESWAP_DATA": "/nonexistent/data", **env})


def test_missing_sample_data_fails_under_ci_and_skips_elsewhere():
    ci = pytest_run(CI="true")
    assert ci.returncode == 1, ci.stdout[-2000:]
    assert "/nonexistent/data is absent (set FACESWAP_DATA); CI needs the sample data" in ci.stdout
    local = pytest_run()
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-2000:]


def test_ci_script_stops_at_once_without_the_data():
    done = subprocess.run([os.path.join(ROOT, ".ci", "run")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FACESWAP_DATA": "/nonexistent/data"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: sample data folder /nonexistent/data is absent (set FACESWAP_DATA); "
                                   "CI needs it")
