"""Who a face is: dlib's 128-D face descriptor, and matching faces against a reference person."""

import itertools
import os

import dlib
import numpy as np

from faceswap_tf import media
from faceswap_tf.errors import UserError
from faceswap_tf.faces import detect

# dlib's own threshold for "same person" with this descriptor (99.38% on LFW at 0.6).
DEFAULT_MATCH_DISTANCE = 0.6


class FaceDescriber:
    """Computes 128-D descriptors (about 60 ms per face on this project's CPU)."""

    def __init__(self, model_path: str | None = None):
        path = model_path or detect.packaged_model_path("descriptor")
        self._model = detect.load_model(dlib.face_recognition_model_v1, path)

    def __call__(self, frame: np.ndarray, face: detect.Face) -> np.ndarray:
        return self.describe(frame, face.landmarks, face.box)

    def describe(self, image: np.ndarray, landmarks: np.ndarray, box=None) -> np.ndarray:
        """The descriptor of the face whose 68 landmarks are given (dlib aligns its own chip
        from them; the box defaults to theirs)."""
        if box is None:
            (left, top), (right, bottom) = landmarks.min(axis=0), landmarks.max(axis=0)
            box = (int(left), int(top), int(right), int(bottom))
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
        shape = dlib.full_object_detection(dlib.rectangle(*box), parts)
        return np.array(self._model.compute_face_descriptor(image, shape), dtype=np.float32)


class Gallery:
    """Descriptors of one person's faces. A face's distance to the gallery is its distance to
    the nearest of them, so identity retrieval between galleries is nearest-neighbour search."""

    def __init__(self, descriptors):
        self.descriptors = np.asarray(descriptors, dtype=np.float32).reshape(-1, 128)
        if not len(self.descriptors):
            raise ValueError("a gallery needs at least one descriptor")

    def __len__(self) -> int:
        return len(self.descriptors)

    def distance(self, descriptor: np.ndarray) -> float:
        return float(np.linalg.norm(self.descriptors - descriptor, axis=1).min())


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def distractor_galleries(paths, detector: detect.FaceDetector, describer: FaceDescriber, per_video: int = 4,
                         within: int = 150, exclude=(), log=None) -> dict[str, Gallery]:
    """Galleries of other people, to retrieve a face among more than the two of a pair: each
    video is one person (its largest face in `per_video` frames spread over its first `within`
    frames: decoding a whole clip for a few faces would cost more than they do), each face of
    an image is one person, a folder gives its videos and images. Files in `exclude` (the
    pair's own footage) are left out; files with no face are skipped with a note on `log`."""
    excluded = {os.path.realpath(path) for path in exclude}
    galleries = {}
    for path in [f for p in paths for f in media.list_media(p)]:
        if os.path.realpath(path) in excluded:
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            if media.is_video(path):
                frames = min(media.probe_video(path).frames or within, within)
                wanted = set(np.linspace(0, frames - 1, per_video).round().astype(int).tolist())
                frames_read = itertools.islice(enumerate(media.iter_video(path)), max(wanted) + 1)
                chosen = (frame for i, frame in frames_read
                          if i in wanted)
                descriptors = [describer(frame, faces[0]) for frame in chosen if (faces := detector(frame))]
                named = {stem: descriptors} if descriptors else {}
            else:
                image = media.read_image(path)
                faces = detector(image)
                named = {f"{stem}#{i}" if len(faces) > 1 else stem: [describer(image, face)]
                         for i, face in enumerate(faces)}
        except (UserError, media.DecodeError) as error:
            named = {}
            if log is not None:
                log.write(f"note: distractor {path} skipped ({error})\n")
        if not named and log is not None:
            log.write(f"note: no face in distractor {path}\n")
        galleries.update({name: Gallery(descriptors) for name, descriptors in named.items()})
    return galleries


def reference_descriptor(path: str, detector: detect.FaceDetector, describer: FaceDescriber):
    """The descriptor of the largest face in a reference image; UserError if it has none."""
    image = media.read_image(path)
    faces = detector(image)
    if not faces:
        raise UserError(f"{path}: no face found in the reference image")
    return describer(image, faces[0])
