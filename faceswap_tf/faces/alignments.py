"""The alignments file: JSON, versioned, validated on load, written atomically.

```
{
  "format": "faceswap_tf.alignments",
  "version": 1,
  "template": "faceswap_tf-68-v1",        # the alignment template the matrices map onto
  "faces": [
    {
      "source": "/abs/path/clip.mp4",      # the video or image the face came from
      "frame": 12,                         # frame index in the source (0 for an image)
      "face": 0,                           # index of the face in that frame, largest first
      "box": [l, t, r, b],                 # detector box, source-frame pixels
      "landmarks": [[x, y], ... 68],       # source-frame pixels
      "matrix": [[a, b, c], [d, e, f]],    # 2x3: source frame -> aligned crop
      "size": 256,                         # aligned crop size in pixels
      "padding": 0.2,                      # crop padding around the inner face, each side
      "file": "clip_000012_0.png",         # the aligned crop, beside the alignments file
      "sha256": "9f86d0..."                # of the crop file's bytes (absent in older files)
    }, ...
  ]
}
```
"""

import dataclasses
import json
import math
import os
import re

import numpy as np

from faceswap_tf import files
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align

FORMAT = "faceswap_tf.alignments"
VERSION = 1
FILE_NAME = "alignments.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class FaceRecord:
    source: str
    frame: int
    face: int
    box: tuple[int, int, int, int]
    landmarks: np.ndarray  # float [68, 2], source-frame pixels
    matrix: np.ndarray  # float [2, 3], frame -> crop
    size: int
    padding: float
    file: str
    sha256: str | None = None  # of the crop file: a crop can always be checked against its record

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.source, self.frame, self.face)

    def crop_landmarks(self) -> np.ndarray:
        """The landmarks in aligned-crop pixels."""
        return align.transform_points(self.matrix, self.landmarks)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "frame": self.frame,
            "face": self.face,
            "box": [int(v) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "matrix": [[float(v) for v in row] for row in self.matrix],
            "size": self.size,
            "padding": self.padding,
            "file": self.file,
            **({"sha256": self.sha256} if self.sha256 else {}),
        }


def save(path: str, faces: list[FaceRecord]) -> None:
    """Writes the file atomically: a temporary file in the same folder, then a rename."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "template": align.TEMPLATE_NAME,
        "faces": [face.to_json() for face in sorted(faces, key=lambda f: f.key)],
    }
    files.write_atomic(path, json.dumps(document, indent=1))


def load(path: str) -> list[FaceRecord]:
    """Reads and validates an alignments file; UserError names the file and the bad field.
    The last few files read are remembered while they stay unchanged on disk (size and
    modification time), since several parts of one run read the same file."""
    try:
        stat = os.stat(path)
        key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if key in _recent:
        return list(_recent[key])
    faces = _load(path)
    if key is not None:
        _recent[key] = tuple(faces)
        while len(_recent) > 4:
            _recent.pop(next(iter(_recent)))
    return faces


_recent: dict = {}


def _load(path: str) -> list[FaceRecord]:
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: no such alignments file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise UserError(f"{path}: not an alignments file (JSON nested too deep)") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a JSON object at the top level")
    _expect(path, "format", document.get("format") == FORMAT, f'"{FORMAT}"')
    _expect(path, "version", document.get("version") == VERSION, f"{VERSION}")
    _expect(
        path, "template", document.get("template") == align.TEMPLATE_NAME,
        f'"{align.TEMPLATE_NAME}" (re-extract faces made with another template)',
    )
    faces = document.get("faces")
    _expect(path, "faces", isinstance(faces, list), "a list")
    return [_parse_face(path, f"faces[{i}]", entry) for i, entry in enumerate(faces)]


def _parse_face(path: str, where: str, entry) -> FaceRecord:
    _expect(path, where, isinstance(entry, dict), "an object")

    def field(name, check, wanted):
        value = entry.get(name)
        _expect(path, f"{where}.{name}", value is not None and check(value), wanted)
        return value

    landmarks = field("landmarks", lambda v: _is_matrix(v, 68, 2), "68 [x, y] pairs")
    matrix = field("matrix", lambda v: _is_matrix(v, 2, 3), "a 2x3 matrix of numbers")
    return FaceRecord(
        source=field("source", lambda v: isinstance(v, str) and v, "a non-empty string"),
        frame=field("frame", _is_index, "an integer >= 0"),
        face=field("face", _is_index, "an integer >= 0"),
        box=tuple(field("box", lambda v: _is_matrix([v], 1, 4), "[left, top, right, bottom]")),
        landmarks=np.array(landmarks, dtype=np.float64),
        matrix=np.array(matrix, dtype=np.float64),
        size=field("size", lambda v: _is_index(v) and v >= 16, "an integer >= 16"),
        padding=field("padding", lambda v: _is_number(v) and 0 <= v < 0.5, "a number in [0, 0.5)"),
        file=field(
            "file",
            lambda v: isinstance(v, str) and v and os.path.basename(v) == v,
            "a file name (no folders)",
        ),
        sha256=_optional(path, entry, f"{where}.sha256", lambda v: isinstance(v, str) and _SHA256.match(v),
                         "64 lower-case hex digits"),
    )


def _optional(path: str, entry: dict, where: str, check, wanted: str):
    value = entry.get(where.rsplit(".", 1)[1])
    _expect(path, where, value is None or check(value), wanted)
    return value


def _expect(path: str, field: str, ok: bool, wanted: str) -> None:
    if not ok:
        raise UserError(f"{path}: field {field}: expected {wanted}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_matrix(value, rows: int, cols: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == rows
        and all(isinstance(r, list) and len(r) == cols and all(map(_is_number, r)) for r in value)
    )
