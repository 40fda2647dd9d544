"""A training run's checkpoints (`model_dir/ckpt-N`): found, checked and tidied.

TensorFlow's index file (`model_dir/checkpoint`) names the newest checkpoint, but it is one
small text file: lost, or left empty or garbage by a crash or a full disk, and a resume
would start again from step 0 and overwrite the checkpoints still there. So checkpoints are
found by listing the `ckpt-N.index` files, and each is read whole (every tensor against its
checksum) before it is used: an unreadable one (truncated, bit-flipped) is passed over, with
a warning, for the one before it. If none can be read, nothing starts from 0 over them.

A save killed part-way (or out of disk) leaves a `ckpt-N_temp/` folder; the next run sweeps
them. The index file itself is rewritten from the listing once a restore has succeeded.
"""

import os
import re
import shutil
import sys
from collections.abc import Iterator

import tensorflow as tf

from faceswap_tf import files
from faceswap_tf.errors import UserError, brief

PREFIX = "ckpt"
INDEX_FILE = "checkpoint"
_INDEX = re.compile(rf"^{PREFIX}-(\d+)\.index$")
_TEMP = re.compile(rf"^{PREFIX}-\d+_temp$")


def step_of(path: str) -> int:
    return int(path.rsplit("-", 1)[1])


def listed(model_dir: str) -> list[str]:
    """The checkpoints in `model_dir` by their `ckpt-N.index` files, newest first."""
    try:
        names = os.listdir(model_dir)
    except OSError:
        return []
    steps = sorted({int(m.group(1)) for m in map(_INDEX.match, names) if m}, reverse=True)
    return [os.path.join(model_dir, f"{PREFIX}-{step}") for step in steps]


def unreadable(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be used (truncated, bit-flipped, missing a file),
    or None when every tensor in it reads back and matches its checksum."""
    try:
        reader = tf.train.load_checkpoint(path)
        for key in reader.get_variable_to_dtype_map():
            reader.get_tensor(key)
    except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as error:
        return brief(error, 160)
    return None


def index_problem(model_dir: str) -> str | None:
    """What is wrong with the index file: "missing", "unreadable", or None."""
    path = os.path.join(model_dir, INDEX_FILE)
    if not os.path.exists(path):
        return "missing"
    try:
        state = tf.train.get_checkpoint_state(model_dir)
    except (ValueError, tf.errors.OpError):
        state = None
    return None if state is not None else "unreadable"


def readable(model_dir: str, log=sys.stderr) -> Iterator[str]:
    """The readable checkpoints of `model_dir`, newest first; a warning on `log` for the index
    file when it is lost and for each checkpoint passed over. UserError if there are
    checkpoints and the caller runs out of readable ones (so a run never starts again from
    step 0 over them)."""
    found = listed(model_dir)
    if not found:
        return
    problem = index_problem(model_dir)
    if problem:
        log.write(f"warning: {os.path.join(model_dir, INDEX_FILE)}: {problem}; found "
                  f"{', '.join(os.path.basename(p) for p in found)} by listing the folder\n")
    reasons = []
    for path in found:
        reason = unreadable(path)
        if reason is None:
            yield path
            reason = "passed over"
        else:
            log.write(f"warning: {path}: unreadable checkpoint ({reason}); trying the one before\n")
        reasons.append(reason)
    raise UserError(f"{model_dir}: none of its {len(found)} checkpoints can be used "
                    f"({found[0]}: {reasons[0]}); move them away to train from step 0 there, "
                    "or train in another --model_dir")


def newest_readable(model_dir: str, log=sys.stderr) -> str | None:
    """The newest readable checkpoint (warnings as `readable`); None if there is none at all."""
    for path in readable(model_dir, log):
        return path
    return None


def write_index(model_dir: str, current: str) -> None:
    """Rewrites the index file to name `current` and the checkpoints before it (so that the
    CheckpointManager rotates them), unless it already names `current`."""
    if index_problem(model_dir) is None:
        state = tf.train.get_checkpoint_state(model_dir)
        if os.path.basename(state.model_checkpoint_path) == os.path.basename(current):
            return
    older = [p for p in reversed(listed(model_dir)) if step_of(p) < step_of(current)]
    lines = [f'model_checkpoint_path: "{os.path.basename(current)}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in [*older, current]]
    files.write_atomic(os.path.join(model_dir, INDEX_FILE), "\n".join(lines) + "\n")


def drop_broken_index(model_dir: str) -> None:
    """Removes an unreadable index file from a folder without checkpoints: TensorFlow's
    CheckpointManager fails on an empty one."""
    if not listed(model_dir) and index_problem(model_dir) == "unreadable":
        os.remove(os.path.join(model_dir, INDEX_FILE))


def sweep_temporary(directory: str) -> list[str]:
    """Removes the `ckpt-N_temp` folders of saves that never finished; returns their names."""
    try:
        names = [name for name in os.listdir(directory) if _TEMP.match(name)]
    except OSError:
        return []
    for name in names:
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    return names
