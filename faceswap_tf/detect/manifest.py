"""The labelled-fakes dataset's manifest: the one definition of `DATASET/manifest.json`.

The dataset command (`faceswap_tf.detect.dataset`) writes it; the detector's training and
evaluation read it. JSON, never pickle; written whole to a temporary file and renamed after
each conversion job, so a killed run leaves the manifest of the jobs that finished (their
files all written before it names them) and a re-run adds only the jobs it lacks.

```
{
 "format": "faceswap_tf.detect_data", "version": 1,
 "jobs": {
  "JOB": {"model": "/abs/export/pair/1500", "model_name": "pair", "model_dir": "/abs/run",
          "step": 1500, "direction": "a_to_b", "source": "identity_a", "target": "identity_b",
          "video": "/abs/clips/identity_a.mp4", "first_frame": 284, "held_out": true,
          "framing": {"crop_size": 256, "padding": 0.2, ...}, "crfs": [23, 30, 35],
          "swapped_video": "videos/JOB.mp4"}
 },
 "faces": [
  {"job": "JOB", "frame": 290, "face": 0, "matrix": [[...], [...]],
   "real": "crops/JOB/290_0_real.png",   # the original frame's aligned crop (label 0)
   "fake": "crops/JOB/290_0_fake.png",   # the swapped frame's crop, the same matrix (label 1)
   "mask": "crops/JOB/290_0_mask.png",   # the blend weights, 0..255: where the face was replaced
   "crf": {"35": {"real": "...", "fake": "..."}},  # both re-encoded as H.264 at that CRF
   "landmarks": [[x, y], ...],  # the real face's 68 points in crop pixels (absent in older datasets)
   "fake_landmarks": [[x, y], ...]}  # the same, as dlib finds them on the swapped crop (absent in older)
 ]
}
```

The real crop shows `source` (the person in the video); the fake shows `target`'s face
blended into `source`'s frame, so its identities are both. Paths are relative to the dataset.
"""

import dataclasses
import json
import os

from faceswap_tf import files
from faceswap_tf.errors import UserError, brief
from faceswap_tf.framing import Framing

FORMAT = "faceswap_tf.detect_data"
VERSION = 1
FILE_NAME = "manifest.json"


@dataclasses.dataclass(frozen=True)
class Job:
    """One conversion: a swapper, one direction, one video, the frames from `first_frame`."""

    model: str  # the SavedModel version that made the fakes
    model_name: str
    model_dir: str | None
    step: int
    direction: str
    source: str  # the person in the video (whose frames were swapped)
    target: str  # the person whose face the swapper draws
    video: str
    first_frame: int
    held_out: bool  # True: frames the swapper held out of its training; False: a video it never saw
    framing: Framing
    crfs: tuple[int, ...]
    swapped_video: str


@dataclasses.dataclass(frozen=True)
class Face:
    job: str
    frame: int
    face: int
    matrix: list  # 2x3, frame -> crop
    real: str
    fake: str
    mask: str
    crf: dict  # {"35": {"real": path, "fake": path}}
    landmarks: list | None = None  # the real face's 68 [x, y] in crop pixels
    fake_landmarks: list | None = None  # the swapped crop's, dlib's predictor in the real face's box


@dataclasses.dataclass
class Manifest:
    jobs: dict[str, Job] = dataclasses.field(default_factory=dict)
    faces: list[Face] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        jobs = {}
        for name, job in self.jobs.items():
            document = dataclasses.asdict(job)
            document["framing"], document["crfs"] = job.framing.to_json(), list(job.crfs)
            jobs[name] = document
        return {"format": FORMAT, "version": VERSION, "jobs": jobs,
                "faces": [dataclasses.asdict(face) for face in self.faces]}

    @classmethod
    def from_json(cls, document, where: str) -> "Manifest":
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise UserError(f"{where}: not a faceswap_tf detector dataset manifest")
        if document.get("version") != VERSION:
            raise UserError(f"{where}: manifest version {document.get('version')}; this faceswap_tf reads "
                            f"version {VERSION}")
        try:
            jobs = {}
            for name, job in document["jobs"].items():
                fields = dict(job, framing=Framing.from_json(job["framing"], where),
                              crfs=tuple(int(c) for c in job["crfs"]))
                jobs[str(name)] = Job(**fields)
            faces = [Face(**face) for face in document["faces"]]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise UserError(f"{where}: malformed manifest ({type(error).__name__}: {brief(error)})") from None
        unknown = {face.job for face in faces} - set(jobs)
        if unknown:
            raise UserError(f"{where}: faces of jobs it does not list ({', '.join(sorted(unknown))})")
        return cls(jobs, faces)


def path_of(folder: str) -> str:
    return os.path.join(folder, FILE_NAME)


def read(folder: str, missing_ok: bool = False) -> Manifest:
    """The dataset's manifest; an empty one for a new folder if `missing_ok`; UserError (one
    line naming the file) for anything else."""
    path = path_of(folder)
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        if missing_ok:
            return Manifest()
        raise UserError(f"{folder}: no {FILE_NAME}; build the dataset with faceswap_tf.detect.dataset") \
            from None
    except (OSError, ValueError, RecursionError) as error:
        raise UserError(f"{path}: unreadable ({brief(error)})") from None
    return Manifest.from_json(document, path)


def write(folder: str, manifest: Manifest) -> None:
    files.write_atomic(path_of(folder), json.dumps(manifest.to_json(), indent=1) + "\n")
