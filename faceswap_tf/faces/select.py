"""Which of a frame's faces to keep: the one face selector of extract and convert.

All faces, or only those of a reference person (dlib's face descriptor within a distance of
the reference image's largest face), and of those optionally only the largest. The reference
filter comes first, so `largest` means the largest face of the reference person, not the
largest face if it happens to be theirs.
"""

import dataclasses

import numpy as np

from faceswap_tf.faces import detect, identity

# Frames between two identity checks of a tracked face: a face that matched is checked again
# now and then; one that did not, soon (its first frames may be blurred by a cut or motion).
RECHECK_MATCH, RECHECK_MISMATCH = 30, 5


@dataclasses.dataclass(frozen=True)
class Selection:
    chosen: list[int]  # positions in the frame's face list, largest first
    rejected: int  # faces found but not the reference person


class FaceSelector:
    def __init__(self, largest: bool = False, reference: np.ndarray | None = None,
                 describer: identity.FaceDescriber | None = None,
                 max_distance: float = identity.DEFAULT_MATCH_DISTANCE):
        if reference is not None and describer is None:
            raise ValueError("a reference person needs a describer")
        self.largest, self.reference, self.describer = largest, reference, describer
        self.max_distance = max_distance
        self._checked: dict = {}  # track key -> (frame index checked, matches)

    @classmethod
    def from_options(cls, largest: bool, reference_image: str | None, detector: detect.FaceDetector,
                     max_distance: float = identity.DEFAULT_MATCH_DISTANCE,
                     descriptor_model: str | None = None) -> "FaceSelector":
        """The selector of the --largest_face/--faces, --reference and --reference_distance flags."""
        if not reference_image:
            return cls(largest)
        describer = identity.FaceDescriber(descriptor_model)
        reference = identity.reference_descriptor(reference_image, detector, describer)
        return cls(largest, reference, describer, max_distance)

    def reset(self) -> None:
        """Forgets the tracks checked so far (before an unrelated image)."""
        self._checked = {}

    def __call__(self, frame: np.ndarray, faces: list[detect.Face], keys: list | None = None,
                 index: int = 0) -> Selection:
        """The faces to keep of `faces` (largest first). With `keys` (a track per face) and the
        frame `index`, a tracked face's identity is only checked again every few frames."""
        chosen = list(range(len(faces)))
        if self.reference is not None:
            chosen = [i for i in chosen
                      if self._matches(frame, faces[i], None if keys is None else keys[i], index)]
        rejected = len(faces) - len(chosen)
        if self.largest:
            chosen = sorted(chosen, key=lambda i: faces[i].size, reverse=True)[:1]
        return Selection(chosen, rejected)

    def _matches(self, frame, face: detect.Face, key, index: int) -> bool:
        checked = self._checked.get(key) if key is not None else None
        if checked is None or index - checked[0] >= (RECHECK_MATCH if checked[1] else RECHECK_MISMATCH):
            distance = identity.distance(self.describer(frame, face), self.reference)
            checked = (index, distance <= self.max_distance)
            if key is not None:
                self._checked[key] = checked
        return checked[1]
