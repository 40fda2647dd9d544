"""Swap-quality metrics, shared by training (TensorBoard under model_dir/eval) and
`faceswap_tf.evaluate`.

They follow the face-swap literature (FaceShifter, SimSwap and their successors report
identity retrieval, pose and expression error, reconstruction PSNR/SSIM), with stand-ins that
run on a CPU from packaged model files:
- identity: dlib's 128-D face descriptor (a ResNet, 99.38% on LFW) instead of ArcFace or
  CosFace embeddings; retrieval is nearest-neighbour search over the two people's galleries;
- pose: `faces.pose` (solvePnP of the landmarks on a generic head) instead of Hopenet;
- expression: the 51 inner landmarks after a similarity fit, over the inter-ocular distance, instead
  of a 3D morphable model's expression coefficients (the landmarks also carry some of the
  face's shape, so two people making the same expression still differ a little).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from faceswap_tf import data
from faceswap_tf.faces import align, identity
from faceswap_tf.framing import Framing

SIDES = ("a", "b")


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def psnr_of_mse(error: float) -> float:
    """PSNR in dB of 8-bit images with this mean squared error (inf when identical)."""
    return 10.0 * math.log10(255.0**2 / error) if error > 0 else math.inf


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_of_mse(mse(a, b))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each pair of [N, H, W, 3] images in 0..255 (Gaussian window of 11, as Wang et
    al. 2004 and `tf.image.ssim`)."""
    return tf.image.ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32), max_val=255.0).numpy()


def expression_error(original: np.ndarray, swapped: np.ndarray) -> float:
    """How far a swapped face's expression is from the original's: the mean distance of the 51
    inner landmarks (brows, eyes, nose, mouth) after the similarity taking the swapped face's
    onto the original's, over the original's inter-ocular distance. The similarity is fitted
    with the alignment's weights (`align.FIT_WEIGHTS`: mostly eyes and nose, which expressions
    barely move), so a moved mouth shows at the mouth instead of being spread over the face.
    0 for the same landmarks; a mouth opened by a third of an eye span gives about 0.04."""
    original, swapped = np.asarray(original, np.float64), np.asarray(swapped, np.float64)
    fit = align.umeyama(swapped[align.INNER], original[align.INNER], align.FIT_WEIGHTS[align.INNER])
    fitted = align.transform_points(fit, swapped[align.INNER])
    left, right = align.eye_centres(original)
    return float(np.linalg.norm(fitted - original[align.INNER], axis=1).mean() / np.linalg.norm(right - left))


@dataclasses.dataclass
class AlignedFaces:
    """Aligned crops of one person, with their landmarks in crop pixels."""

    crops: np.ndarray  # uint8 [N, S, S, 3]
    landmarks: np.ndarray  # float32 [N, 68, 2]


def aligned_faces(folder: str, holdout: float, which: str, count: int) -> AlignedFaces:
    """Up to `count` faces evenly spread over a person's training ("train") or held-out
    ("held") frames (`data.split_holdout`)."""
    records = data.face_records(folder, holdout, which)
    picks = np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).round().astype(int))
    chosen = [records[i] for i in picks]
    return AlignedFaces(np.stack([data.read_crop(folder, r) for r in chosen]),
                        np.stack([r.crop_landmarks() for r in chosen]).astype(np.float32))


def describe(describer: identity.FaceDescriber, faces: AlignedFaces) -> np.ndarray:
    """[N, 128] descriptors of aligned crops (dlib aligns its chip from the given landmarks)."""
    pairs = zip(faces.crops, faces.landmarks, strict=True)
    return np.stack([describer.describe(crop, points) for crop, points in pairs])


def gallery(describer: identity.FaceDescriber, folder: str, holdout: float, size: int) -> identity.Gallery:
    """A person's gallery: `size` faces evenly spread over the training part of their frames."""
    return identity.Gallery(describe(describer, aligned_faces(folder, holdout, "train", size)))


def retrieval(descriptors: np.ndarray, galleries: dict[str, identity.Gallery]) -> dict[str, np.ndarray]:
    """Per face, its distance to each person's gallery ("distance_a", "distance_b") and whether
    it is nearer B's ("closer_to_b")."""
    distances = {side: np.array([galleries[side].distance(d) for d in descriptors]) for side in SIDES}
    return {"distance_a": distances["a"], "distance_b": distances["b"],
            "closer_to_b": distances["b"] < distances["a"]}


class HeldOutEvaluation:
    """Identity and reconstruction metrics of a model on both people's held-out faces.

    Galleries: `gallery_size` training faces per person. Probes: `probe_size` held-out faces
    per person, swapped to the other person through the same framing the exported model uses
    (the network's view of the crop's centre, blended back onto the crop with its mask); the
    swapped crop keeps the original's landmarks for dlib's chip. Reconstruction: the raw
    decoder RGB of each person's own decoder against its input, at the model's resolution.
    """

    def __init__(self, faces: dict[str, str], holdout: float, framing: Framing,
                 describer: identity.FaceDescriber | None = None, gallery_size: int = 30, probe_size: int = 16,
                 galleries: dict[str, identity.Gallery] | None = None):
        self.describer = describer or identity.FaceDescriber()
        self.galleries = galleries or {side: gallery(self.describer, faces[side], holdout, gallery_size)
                                       for side in SIDES}
        self.held = {side: aligned_faces(faces[side], holdout, "held", probe_size) for side in SIDES}
        self.framing = framing

    def __call__(self, decode) -> dict[str, float]:
        """`decode(side, views)` -> (rgb, mask) of that person's decoder on views in [-1, 1].
        Returns scalars named like TensorBoard tags: identity/a_to_b_closer_to_b (share of the
        A->B swaps nearer B's gallery than A's), identity/a_to_b_distance_to_a and _to_b,
        reconstruction/psnr_a and ssim_a, and the same with a and b exchanged."""
        results = {}
        for side, other in (("a", "b"), ("b", "a")):
            held = self.held[side]
            framing = self.framing
            views = framing.tf_to_view(held.crops)
            rgb, _ = decode(side, views)
            original, rebuilt = _to_pixels(views), _to_pixels(rgb)
            each = [psnr(o, r) for o, r in zip(original, rebuilt, strict=True)]
            results[f"reconstruction/psnr_{side}"] = float(np.mean(each))
            results[f"reconstruction/ssim_{side}"] = float(np.mean(ssim(original, rebuilt)))
            rgb, mask = decode(other, views)
            swapped = framing.tf_blend(held.crops, rgb, mask)["swapped"].numpy()
            found = retrieval(describe(self.describer, AlignedFaces(swapped, held.landmarks)), self.galleries)
            towards = found["closer_to_b"] if other == "b" else ~found["closer_to_b"]
            name = f"identity/{side}_to_{other}"
            results[f"{name}_closer_to_{other}"] = float(np.mean(towards))
            results[f"{name}_distance_to_{other}"] = float(np.mean(found[f"distance_{other}"]))
            results[f"{name}_distance_to_{side}"] = float(np.mean(found[f"distance_{side}"]))
        return results


def _to_pixels(images) -> np.ndarray:
    return ((np.asarray(images, np.float32) + 1.0) * 127.5).clip(0.0, 255.0)
