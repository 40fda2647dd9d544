"""The package as a user installs it: a wheel, not the source tree (`pip install .`, no -e)."""

import os
import shutil
import subprocess
import sys
import sysconfig

from tests.conftest import ROOT, data_path

ENTRY_POINTS = ("faceswap-extract", "faceswap-train", "faceswap-export", "faceswap-convert",
                "faceswap-coverage", "faceswap-evaluate", "faceswap-detect-data", "faceswap-detect",
                "faceswap-detect-export", "faceswap-detect-score")


def run(*command, cwd, timeout=600):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_installs_into_a_fresh_environment_and_every_stage_runs(tmp_path, data_dir):
    # Built from a copy of the sources, so that nothing is written into the working tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    shutil.copytree(os.path.join(ROOT, "faceswap_tf"), source / "faceswap_tf",
                    ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
        "-w", str(tmp_path / "dist"), str(source), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("faceswap_tf-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel), cwd=tmp_path)
    # The dependencies come from this environment (already installed from the registry);
    # the package itself only from the wheel.
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
    (tmp_path / "venv" / site.stdout.strip().removeprefix(str(venv) + "/") / "deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")

    where = run(python, "-c", "import faceswap_tf.faces.align, faceswap_tf.convert.cli as c; print(c.__file__)",
                cwd=tmp_path)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    for script in ENTRY_POINTS:
        done = subprocess.run([str(venv / "bin" / script), "--help"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert "--helpfull" in done.stdout + done.stderr, (script, done.stderr)
        assert "Traceback" not in done.stderr, (script, done.stderr)
    photo = data_path(data_dir, "images", "faces", "two_people.jpg")
    done = run(str(venv / "bin" / "faceswap-extract"), f"--input={photo}",
               f"--output_dir={tmp_path / 'faces'}", "--min_face_size=40", cwd=tmp_path)
    assert "faces written: 2" in done.stderr
    assert (tmp_path / "faces" / "alignments.json").exists()
