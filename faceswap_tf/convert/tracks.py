"""Faces followed from frame to frame, and their landmarks smoothed over time.

dlib's landmarks wobble by a pixel or two from frame to frame even on a still face; aligned
on them as they are, the swapped face shakes on the head. `Smoother` replaces each face's
landmarks by a Gaussian-weighted mean over the same face's landmarks in the frames before
*and after* it (a centred window, so a moving face is not left behind), which delays the
stream by the window's radius. Only the alignment uses the smoothed points: the expression
the model reproduces comes from the pixels of the crop, not from the landmarks.
"""

import collections
import dataclasses
import math

import numpy as np

from faceswap_tf.faces import detect


@dataclasses.dataclass
class TrackedFace:
    track: int
    face: detect.Face
    landmarks: np.ndarray  # [68, 2] frame pixels, smoothed once it has left the Smoother


class Tracks:
    """Gives each face the track id of the previous frame's face it overlaps most."""

    def __init__(self, min_iou: float = 0.3):
        self.min_iou = min_iou
        self._previous: list[TrackedFace] = []
        self._next = 0

    def __call__(self, faces: list[detect.Face]) -> list[TrackedFace]:
        pairs = sorted(((detect.iou(old.face.box, new.box), i, j)
                        for i, old in enumerate(self._previous) for j, new in enumerate(faces)), reverse=True)
        track_of, used = {}, set()
        for overlap, i, j in pairs:
            if overlap < self.min_iou:
                break
            if i not in used and j not in track_of:
                track_of[j] = self._previous[i].track
                used.add(i)
        tracked = []
        for j, face in enumerate(faces):
            if j not in track_of:
                track_of[j], self._next = self._next, self._next + 1
            tracked.append(TrackedFace(track_of[j], face, face.landmarks.astype(np.float64)))
        self._previous = tracked
        return tracked


class Smoother:
    """Centred Gaussian smoothing of each track's landmarks, sigma in frames (0: off).

    `push(item, faces)` takes one frame's tracked faces and returns the (item, faces) pairs
    now complete: a frame leaves `radius` frames after it arrived; `flush()` returns the rest.
    """

    def __init__(self, sigma: float):
        self.sigma = sigma
        self.radius = math.ceil(2.0 * sigma) if sigma > 0 else 0
        self._past: collections.deque = collections.deque(maxlen=self.radius)  # emitted frames
        self._pending: collections.deque = collections.deque()

    def push(self, item, faces: list[TrackedFace]) -> list:
        self._pending.append((item, faces))
        ready = []
        while len(self._pending) > self.radius:
            ready.append(self._emit())
        return ready

    def flush(self) -> list:
        ready = []
        while self._pending:
            ready.append(self._emit())
        return ready

    def _emit(self):
        item, faces = self._pending[0]
        if self.radius:
            context = [*self._past, *self._pending]
            faces = [self._smoothed(face, context, len(self._past)) for face in faces]
        self._past.append(self._pending.popleft())
        return item, faces

    def _smoothed(self, face: TrackedFace, context: list, centre: int) -> TrackedFace:
        # The window is kept symmetric: where the track begins or ends (the clip's first and
        # last frames, a face coming into view), it shrinks to the frames present on both
        # sides. A one-sided window would pull the face towards where it is going.
        points = [next((other.face.landmarks for other in others if other.track == face.track), None)
                  for _, others in context]
        reach = 0
        while (reach < self.radius and centre - reach - 1 >= 0 and centre + reach + 1 < len(points)
               and points[centre - reach - 1] is not None and points[centre + reach + 1] is not None):
            reach += 1
        total, weights = np.zeros((68, 2), dtype=np.float64), 0.0
        for offset in range(-reach, reach + 1):
            weight = math.exp(-0.5 * (offset / self.sigma) ** 2)
            total += weight * points[centre + offset]
            weights += weight
        return TrackedFace(face.track, face.face, total / weights)


def jitter(points: np.ndarray) -> tuple[float, float]:
    """How much a face's placement moves, from its points over consecutive frames [T, N, 2]
    (frame pixels): the mean frame-to-frame movement of a point, and the mean size of its
    second difference |p(t+1) - 2 p(t) + p(t-1)|, the shake that smooth motion lacks."""
    points = np.asarray(points, dtype=np.float64)
    movement = np.linalg.norm(np.diff(points, axis=0), axis=-1).mean()
    shake = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1).mean()
    return float(movement), float(shake)
