"""Swap-quality metrics, shared by training (TensorBoard under model_dir/eval) and
`faceswap_tf.evaluate`.

They follow the face-swap literature (FaceShifter, SimSwap and their successors report
identity retrieval, pose and expression error, reconstruction PSNR/SSIM), with stand-ins that
run on a CPU from packaged model files:
- identity: dlib's 128-D face descriptor (a ResNet, 99.38% on LFW) instead of ArcFace or
  CosFace embeddings; retrieval is nearest-neighbour search over the two people's galleries;
- pose: `faces.pose` (solvePnP of the landmarks on a generic head) instead of Hopenet;
- expression: mouth opening and eye aperture from the landmarks (`faces.expression`) followed
  over time, instead of a 3D morphable model's expression coefficients;
- detail, expression following and motion (below): what a still or blurred paste fails;
- colour and seam (below): what a face of another skin tone or lighting, pasted with a visible
  edge, fails.
"""

import dataclasses
import math

import cv2
import numpy as np
import tensorflow as tf

from faceswap_tf import data
from faceswap_tf.convert.blend import local_mean
from faceswap_tf.faces import expression, identity, masks
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


# --- colour and seam ---------------------------------------------------------------------
# The scale colour is compared at, of the inter-ocular distance: finer than lighting, coarser
# than skin texture and encoding noise; and how deep the seam's band reaches into the face.
COLOUR_SIGMA = 0.1
SEAM_DEPTH = 0.25


@dataclasses.dataclass(frozen=True)
class ColourMismatch:
    """A face's colour against the original's, on its skin (`masks.skin_mask`), at the scale of
    `COLOUR_SIGMA`: `difference` ([S, S, 3], L*a*b*) and its CIE76 distance ΔE*ab (2.3 is about
    one just-noticeable difference, Sharma 2003) as `colour` (the median over the skin) and
    `seam` (the 90th percentile over the skin within `SEAM_DEPTH` of the face's edge, where a
    pasted face meets the frame)."""

    difference: np.ndarray
    colour: float
    seam: float
    edge: np.ndarray  # bool [S, S]: the seam's band


def colour_mismatch(original: np.ndarray, images: dict, landmarks: np.ndarray) -> dict:
    """Each of `images` (name -> uint8 RGB) against `original`: the same aligned crop of one
    face, whose 68 points are `landmarks`. Returns name -> `ColourMismatch`."""
    size = original.shape[:2]
    skin = masks.skin_mask(landmarks, size) > 127
    ocular = float(expression.eye_span(landmarks))
    weight, sigma = skin.astype(np.float32), max(0.5, COLOUR_SIGMA * ocular)
    inside = cv2.distanceTransform((masks.face_mask(landmarks, size) > 127).astype(np.uint8), cv2.DIST_L2, 5)
    edge = skin & (inside < SEAM_DEPTH * ocular)

    def lab(image):
        return local_mean(cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB), weight, sigma)

    reference, out = lab(original), {}
    for name, image in images.items():
        difference = lab(image) - reference
        distance = np.linalg.norm(difference, axis=-1)
        out[name] = ColourMismatch(
            difference, float(np.median(distance[skin])) if skin.any() else math.nan,
            float(np.percentile(distance[edge], 90)) if edge.any() else math.nan, edge)
    return out


def colour_flicker(previous: ColourMismatch, current: ColourMismatch) -> float:
    """How much a face's colour difference from the original changes from one frame to the next
    at its edge (mean ΔE*ab over the seam's band of both): a mask or a colour match that
    flickers. Both in the original face's aligned crop, so the head's movement is taken out."""
    edge = previous.edge & current.edge
    if not edge.any():
        return math.nan
    return float(np.mean(np.linalg.norm(current.difference[edge] - previous.difference[edge], axis=-1)))


# --- what the eye sees: detail, expression following, motion ------------------------------

def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM map of two float32 greyscale images in 0..255 (Gaussian window of sigma 1.5,
    as Wang et al. 2004), without TensorFlow."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda image: cv2.GaussianBlur(image, (11, 11), 1.5)  # noqa: E731
    mean_a, mean_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mean_a**2, blur(b * b) - mean_b**2
    covariance = blur(a * b) - mean_a * mean_b
    return ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))


def band_energies(gray: np.ndarray, mask: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Energy of three octaves of detail inside `mask` of a float32 greyscale image: the mean
    square of the differences of Gaussians of sigma (0, 1, 2, 4) x `scale` pixels, finest first.
    `scale` ties the octaves to the face's size (1 for an eye span of about 90 pixels)."""
    sigmas = [s * scale for s in _BAND_SIGMAS]
    blurred = [gray] + [cv2.GaussianBlur(gray, (0, 0), s) for s in sigmas[1:]]
    return np.array([float(np.mean(np.square((blurred[i] - blurred[i + 1])[mask])))
                     for i in range(len(sigmas) - 1)])


_BAND_SIGMAS = (0.0, 1.0, 2.0, 4.0)


def sharpness(ratios: np.ndarray) -> float:
    """How close a face's detail is to the original's, from the per-octave energy ratios
    (swap over original): the octave furthest off, as min(r, 1/r). 1 for the original's own
    detail; below 1 for a blurred face (too little) and equally for noise, a sharpening halo
    or blotches (too much): more than the original is not better."""
    ratios = np.asarray(ratios, np.float64)
    if not np.all(np.isfinite(ratios)) or np.any(ratios <= 0):
        return 0.0
    return float(np.min(np.minimum(ratios, 1.0 / ratios)))


def following(original: np.ndarray, swapped: np.ndarray) -> dict:
    """How a measure of the swap (mouth opening, eye aperture) follows the original's over
    time: Pearson `correlation`, and `gain`, the least-squares slope of swap against original
    (1: opens as far; 0: does not move). NaN where the original does not move at all; a swap
    that does not move has correlation 0."""
    original, swapped = np.asarray(original, np.float64), np.asarray(swapped, np.float64)
    keep = np.isfinite(original) & np.isfinite(swapped)
    original, swapped = original[keep], swapped[keep]
    if len(original) < 3 or np.std(original) == 0:
        return {"correlation": math.nan, "gain": math.nan, "frames": int(len(original))}
    o, s = original - original.mean(), swapped - swapped.mean()
    if np.std(swapped) < 1e-9 * max(1.0, float(np.abs(swapped).max())):  # rounding, not movement
        s = np.zeros_like(s)
    spread = float(np.sqrt(np.sum(o * o) * np.sum(s * s)))
    return {"correlation": float(np.sum(o * s) / spread) if spread > 0 else 0.0,
            "gain": float(np.sum(o * s) / np.sum(o * o)), "frames": int(len(original))}


def motion(tracks, lag: int = 1) -> dict:
    """How swapped faces move against the originals from frame to frame. `tracks`: pairs of
    [T, P, 2] point tracks (original, swapped) of the same faces, both in the ORIGINAL face's
    aligned-crop coordinates, so the head's own movement is taken out; NaN rows where a face
    was not found. Returns the `correlation` of their frame-to-frame velocities over `lag`
    frames (the cosine of the two velocity fields, pooled) and the `speed` ratio (rms swapped
    over rms original). A face that moves as the original's does: both near 1. A still paste:
    correlation near 0, speed low. A jittering paste: correlation near 0, speed high."""
    velocities = []
    for original, swapped in tracks:
        original, swapped = np.asarray(original, np.float64), np.asarray(swapped, np.float64)
        if len(original) <= lag:
            continue
        vo, vs = original[lag:] - original[:-lag], swapped[lag:] - swapped[:-lag]
        keep = np.isfinite(vo).all(axis=(1, 2)) & np.isfinite(vs).all(axis=(1, 2))
        velocities.append((vo[keep].ravel(), vs[keep].ravel()))
    if not velocities:
        return {"correlation": math.nan, "speed": math.nan, "values": 0}
    vo, vs = (np.concatenate(parts) for parts in zip(*velocities, strict=True))
    if not np.any(vo):
        return {"correlation": math.nan, "speed": math.nan, "values": int(len(vo))}
    spread = float(np.sqrt(np.sum(vo * vo) * np.sum(vs * vs)))
    return {"correlation": float(np.sum(vo * vs) / spread) if spread > 0 else 0.0,
            "speed": float(np.sqrt(np.mean(vs * vs) / np.mean(vo * vo))), "values": int(len(vo))}


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
