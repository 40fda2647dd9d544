"""The entry points' manners: one line for a mistake, and no TensorFlow start-up noise."""

from faceswap_tf import quiet
from tests.conftest import run_module


def test_tensorflow_start_up_noise_is_held_back_unless_asked_for(tmp_path):
    args = (f"--model_dir={tmp_path / 'none'}", "--name=x", f"--export_dir={tmp_path}")
    plain = run_module("faceswap_tf.export", *args)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [f"error: {tmp_path / 'none'}: no config.json; is it a "
                                                 "faceswap_tf.train --model_dir?"]
    verbose = run_module("faceswap_tf.export", *args, "--verbosity=1")
    lines = verbose.stderr.strip().splitlines()
    assert verbose.returncode == 2 and lines[-1] == plain.stderr.strip()
    assert any(quiet.NOISE.search(line.encode()) for line in lines[:-1]), lines


def test_only_the_known_start_up_lines_are_noise():
    for line in ("I0000 00:00:1796.1 port.cc:153] oneDNN custom operations are on. You may see",
                 "E0000 00:00:1796.5 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
                 "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"):
        assert quiet.NOISE.search(line.encode()), line
    for line in ("E0000 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: Mutation::Apply error",
                 "W0000 bfc_allocator.cc:290] Allocator (GPU_0_bfc) ran out of memory trying to allocate",
                 "error: something the user must see"):
        assert not quiet.NOISE.search(line.encode()), line
