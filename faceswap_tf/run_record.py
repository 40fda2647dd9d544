"""What a training run records: the one definition of `model_dir/config.json`.

Train writes it (only once a resume's restore has succeeded); export, evaluate and detect read
it. It holds what the networks are (`models.ModelConfig`), how their faces are framed
(`framing.Framing`), which frames were held out of training (per source video, the first
held-out frame), the seed, and what the run computed with (`Runtime`).

The settings that decide what a checkpoint means (the model, the framing and the hold-out)
are also stored inside every checkpoint (`settings_variable`). A resume with other settings,
or a record that no longer agrees with its checkpoint (edited by hand, or copied from another
run), is refused with one line naming the setting, before anything is written.

```
{
 "format": "faceswap_tf.run", "version": 2,
 "model": {"resolution": 64, "width": 0.5, ...},
 "framing": {"crop_size": 256, "padding": 0.2, "coverage": 0.85, "resolution": 64,
             "template": "faceswap_tf-68-v1"},
 "holdout": 0.2, "seed": 0,
 "faces": {"a": {"folder": "/abs/faces_a", "name": "identity_a", "faces": 354,
                 "held_out_from": {"/abs/identity_a.mp4": 284}}, "b": {...}},
 "runtime": {"policy": "mixed_bfloat16", "xla": false, "strategy": "default", "replicas": 1}
}
```
"""

import collections
import dataclasses
import json
import math
import os
import sys

import tensorflow as tf

from faceswap_tf import checkpoints, files, models
from faceswap_tf.errors import UserError, brief
from faceswap_tf.faces import alignments
from faceswap_tf.framing import Framing
from faceswap_tf.runtime import Runtime

FORMAT = "faceswap_tf.run"
VERSION = 2
FILE_NAME = "config.json"
SIDES = ("a", "b")
# The checkpoint's copy of the settings (a string variable saved with the networks).
SETTINGS_KEY = "run_settings/.ATTRIBUTES/VARIABLE_VALUE"


@dataclasses.dataclass(frozen=True)
class FaceSet:
    """One person's training faces: the extract folder, a name (the stem of the source most
    faces came from), how many faces, and per source the first frame held out of training."""

    folder: str
    name: str
    faces: int
    held_out_from: dict[str, int]

    def is_held_out(self, source: str, frame: int) -> bool | None:
        """Whether a frame of `source` was held out of training; None for a source the model
        never saw."""
        cut = self.held_out_from.get(os.path.abspath(source))
        return None if cut is None else frame >= cut


def split_holdout(records, holdout: float):
    """(train, held out): per source, the faces in the last `holdout` of its frame range."""
    cuts = holdout_cuts(records, holdout)
    train, held = [], []
    for record in records:
        (held if record.frame >= cuts[record.source] else train).append(record)
    return train, held


def holdout_cuts(records, holdout: float) -> dict[str, int]:
    """Per source, the first frame of its held-out part (past its last frame for holdout 0)."""
    last = {}
    for record in records:
        last[record.source] = max(last.get(record.source, 0), record.frame + 1)
    return {source: math.ceil(end * (1.0 - holdout)) if holdout else end + 1 for source, end in last.items()}


def describe_faces(folder: str, holdout: float) -> tuple[FaceSet, Framing]:
    """The face set of an extract folder and its crops' framing (one size and padding)."""
    path = os.path.join(folder, alignments.FILE_NAME)
    if not os.path.exists(path):
        raise UserError(f"{folder}: no {alignments.FILE_NAME}; run faceswap_tf.extract first")
    records = alignments.load(path)
    if not records:
        raise UserError(f"{path}: no faces")
    crops = {(record.size, record.padding) for record in records}
    if len(crops) > 1:
        raise UserError(f"{path}: faces of several crop sizes or paddings {sorted(crops)}; "
                        "extract them again with one --size and --padding")
    (size, padding), = crops
    sources = collections.Counter(record.source for record in records)
    name = os.path.splitext(os.path.basename(sources.most_common(1)[0][0]))[0]
    faces = FaceSet(folder=os.path.abspath(folder), name=name, faces=len(records),
                    held_out_from=holdout_cuts(records, holdout))
    return faces, Framing(crop_size=size, padding=padding)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    model: models.ModelConfig
    framing: Framing
    holdout: float
    seed: int
    faces: dict[str, FaceSet]
    runtime: Runtime | None = None
    warm_start: dict | None = None  # {"from": checkpoint, "step": N, "parts": [...]}: where the weights began

    @classmethod
    def for_training(cls, model: models.ModelConfig, faces_a: str, faces_b: str, coverage: float,
                     holdout: float, seed: int, used: Runtime | None = None) -> "RunRecord":
        """The record of a run on these two extract folders; UserError if their crops are
        framed differently."""
        sets, framings = {}, {}
        for side, folder in (("a", faces_a), ("b", faces_b)):
            sets[side], framings[side] = describe_faces(folder, holdout)
        if framings["a"] != framings["b"]:
            raise UserError(f"{faces_a} and {faces_b}: faces extracted with different --size or --padding "
                            f"({framings['a'].crop_size} px, {framings['a'].padding}; "
                            f"{framings['b'].crop_size} px, {framings['b'].padding}); extract both alike")
        return cls(model=model, framing=framings["a"].with_view(coverage, model.resolution),
                   holdout=holdout, seed=seed, faces=sets, runtime=used)

    def settings(self) -> dict:
        """What a checkpoint of this run means: the networks, the framing, the hold-out."""
        return {"model": dataclasses.asdict(self.model), "framing": self.framing.to_json(),
                "holdout": self.holdout}

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **self.settings(), "seed": self.seed,
                "faces": {side: dataclasses.asdict(face) for side, face in self.faces.items()},
                "runtime": dataclasses.asdict(self.runtime) if self.runtime else None,
                "warm_start": self.warm_start}

    @classmethod
    def from_json(cls, document, where: str) -> "RunRecord":
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise UserError(f"{where}: not a faceswap_tf run record (written by an older version? run "
                            "faceswap_tf.train once more with the same flags to refresh it)")
        if document.get("version") != VERSION:
            raise UserError(f"{where}: run record version {document.get('version')}; this faceswap_tf "
                            f"reads version {VERSION}")
        try:
            model = models.ModelConfig(**document["model"])
            faces = {side: FaceSet(**document["faces"][side]) for side in SIDES}
            used = document.get("runtime")
            return cls(model=model, framing=Framing.from_json(document["framing"], where),
                       holdout=float(document["holdout"]), seed=int(document["seed"]), faces=faces,
                       runtime=Runtime(**used) if used else None, warm_start=document.get("warm_start"))
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{where}: malformed run record ({type(error).__name__}: {error})") from None


def path_of(model_dir: str) -> str:
    return os.path.join(model_dir, FILE_NAME)


def write(model_dir: str, record: RunRecord) -> None:
    files.write_atomic(path_of(model_dir), json.dumps(record.to_json(), indent=1) + "\n")


def read(model_dir: str) -> RunRecord:
    """The record of a training run; UserError naming the file and the problem."""
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise UserError(f"{model_dir}: not a folder (--model_dir takes a training run's folder)")
    path = path_of(model_dir)
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{model_dir}: no {FILE_NAME}; is it a faceswap_tf.train --model_dir?") from None
    except (OSError, ValueError, RecursionError) as error:
        raise UserError(f"{path}: unreadable ({brief(error)})") from None
    return RunRecord.from_json(document, path)


# --- the checkpoint's copy of the settings ------------------------------------------------

def settings_variable(record: RunRecord) -> tf.Variable:
    """A string variable holding `record.settings()`, to be saved in every checkpoint."""
    return tf.Variable(json.dumps(record.settings(), sort_keys=True), dtype=tf.string, trainable=False,
                       name="run_settings")


def checkpoint_settings(checkpoint_path: str) -> dict | None:
    """The settings saved in a checkpoint; None for one written before they were."""
    try:
        reader = tf.train.load_checkpoint(checkpoint_path)
        if not reader.has_tensor(SETTINGS_KEY):
            return None
        return json.loads(reader.get_tensor(SETTINGS_KEY))
    except (tf.errors.OpError, ValueError) as error:
        raise UserError(f"{checkpoint_path}: unreadable checkpoint ({brief(error)})") from None


def differences(expected: dict, found: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(setting, expected value, found value) for every setting that differs."""
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out


def check_matches_checkpoint(settings: dict, checkpoint_path: str, what: str, fix: str) -> None:
    """UserError naming the first setting in which `settings` differ from the checkpoint's.
    `what` says whose settings they are ("--flags", "config.json"); `fix` what to do."""
    saved = checkpoint_settings(checkpoint_path)
    if saved is None:
        return
    found = differences(saved, settings)
    if found:
        name, theirs, ours = (_shown(value) for value in found[0])
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UserError(f"{what}: {_flag(name)} is {ours}, but {checkpoint_path} was trained with "
                        f"{theirs}{more}; {fix}")


def _shown(value) -> str:
    """A setting's value in an error; one that settings leave out at its default is "the default"."""
    return "the default" if value is None else str(value)


def _flag(name: str) -> str:
    """model.resolution -> resolution, framing.coverage -> coverage: as the flags say it."""
    return name.rsplit(".", 1)[-1]


def read_checked(model_dir: str, log=sys.stderr) -> tuple[RunRecord, str]:
    """The record of a training run and its newest readable checkpoint (`checkpoints`: found
    without the index file; an unreadable one is passed over with a warning on `log`),
    checked against each other: UserError (one line) if there is no usable checkpoint or
    they disagree."""
    record = read(model_dir)
    checkpoint = checkpoints.newest_readable(model_dir, log)
    if not checkpoint:
        raise UserError(f"{model_dir}: no checkpoint; train first")
    check_matches_checkpoint(record.settings(), checkpoint, path_of(model_dir),
                             "the record no longer describes the checkpoint (edited by hand?); put it back "
                             "as it was, or run faceswap_tf.train again with the checkpoint's settings")
    return record, checkpoint
