"""The training data: aligned faces from the extract stage, drawn and augmented on the fly.

Each person's faces are decoded once, cropped to the model's coverage, resized to its
resolution and held in memory with their masks, as uint8 [N, R, R, 5]: RGB, the face mask,
and the eye+mouth region. A batch is a pure function of (seed, step): indices and every
augmentation are drawn with stateless random ops, so a resumed run sees exactly the batches
an uninterrupted one would have, with no iterator state in the checkpoint.

Augmentation, as in faceswap-GAN: a random rotation, scale, shift and flip applied to image
and masks together (stacked, so they never drift apart); a small colour change; and the
random warp: the model's input is the face distorted by a smooth random grid, its target the
undistorted face, so the autoencoder has to learn faces rather than copy pixels.
"""

import dataclasses
import hashlib
import math
import os

import cv2
import numpy as np
import tensorflow as tf

from faceswap_tf import run_record
from faceswap_tf.errors import UserError
from faceswap_tf.faces import alignments, coverage, masks
from faceswap_tf.framing import Framing


@dataclasses.dataclass(frozen=True)
class DataConfig:
    faces_a: str
    faces_b: str
    resolution: int = 64
    coverage: float = 0.85  # centre part of the aligned crop the model sees
    batch_size: int = 16
    holdout: float = 0.2  # the last part of each source's frames, kept for evaluation
    rotation: float = 10.0  # degrees, either way
    zoom: float = 0.05
    shift: float = 0.05  # of the image size
    flip: bool = True
    warp: float = 0.02  # std of the warp grid's displacement, of the image size
    colour: float = 0.05
    balance: float = 0.0  # 0: faces drawn uniformly; 1: rare expressions and poses as often as common ones
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.holdout < 1.0:
            raise UserError(f"--holdout={self.holdout}: must be in [0, 1)")
        if self.batch_size < 1:
            raise UserError(f"--batch_size={self.batch_size}: must be at least 1")
        if not 0.0 <= self.balance <= 1.0:
            raise UserError(f"--balance={self.balance}: must be in [0, 1]")


def load_faces(folder: str, view: Framing, holdout: float = 0.0, which: str = "train") -> np.ndarray:
    """uint8 [N, R, R, 5]: RGB, face mask, eye+mouth mask of one person's aligned faces, in
    the network's view of `view` (a model's framing)."""
    records = face_records(folder, holdout, which)
    return np.stack([model_view(read_crop(folder, record), record, view) for record in records])


def face_records(folder: str, holdout: float, which: str = "train") -> list:
    """The alignments records of one person's training ("train") or held-out ("held") faces."""
    path = os.path.join(folder, alignments.FILE_NAME)
    if not os.path.exists(path):
        raise UserError(f"{folder}: no {alignments.FILE_NAME}; run faceswap_tf.extract first")
    train, held = run_record.split_holdout(alignments.load(path), holdout)
    records = train if which == "train" else held
    if not records:
        raise UserError(f"{path}: no {which} faces (holdout {holdout})")
    return records


def read_crop(folder: str, record) -> np.ndarray:
    """The aligned RGB crop of an alignments record, checked against the record: its content
    hash where the record has one (a crop replaced by another extract, or damaged, is not
    the face the record describes), else its size."""
    path = os.path.join(folder, record.file)
    try:
        with open(path, "rb") as handle:
            encoded = handle.read()
    except OSError:
        encoded = b""
    if encoded and record.sha256 and hashlib.sha256(encoded).hexdigest() != record.sha256:
        raise UserError(f"{path}: not the crop {os.path.join(folder, alignments.FILE_NAME)} records (changed "
                        f"since it was extracted: an interrupted extract?); extract {record.source} again")
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR) if encoded else None
    if image is None or image.shape[:2] != (record.size, record.size):
        raise UserError(f"{path}: missing, unreadable or not {record.size}x{record.size} as "
                        f"{os.path.join(folder, alignments.FILE_NAME)} says")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def model_view(crop: np.ndarray, record, view: Framing) -> np.ndarray:
    """uint8 [R, R, 5]: an aligned crop in the network's view, with its face mask and its
    eye+mouth region drawn from the record's landmarks."""
    if (record.size, record.padding) != (view.crop_size, view.padding):
        raise UserError(f"{record.file}: a {record.size} px crop with padding {record.padding}, but the model "
                        f"frames {view.crop_size} px crops with padding {view.padding}")
    points = view.points_to_view(record.crop_landmarks())
    regions = masks.region_masks(points, view.resolution)
    eyes_mouth = np.maximum(regions["eyes"], regions["mouth"])
    return np.concatenate([view.to_view(crop), regions["face"][..., None], eyes_mouth[..., None]], axis=-1)


def sampling_weights(folder: str, holdout: float, strength: float) -> np.ndarray:
    """Per training face (in `load_faces`' order), how often to draw it: rarer expressions and
    poses more (`faces.coverage.rarity_weights`), all alike for strength 0."""
    records = face_records(folder, holdout)
    if strength <= 0:
        return np.ones(len(records))
    return coverage.rarity_weights(coverage.measure_records(folder, records), strength)


# The expression and pose of a face, in this order (`expression_labels`).
EXPRESSION_MEASURES = ("mouth", "eyes", "yaw", "pitch")
_YAW = EXPRESSION_MEASURES.index("yaw")
# The label rows a batch may carry (`dataset`'s `labels`): what the face shows, and what a swap
# made from it should show.
LABELS = ("expression", "swap_expression")


def expression_labels(folder: str, holdout: float) -> np.ndarray:
    """float32 [N, 4] per training face (in `load_faces`' order): mouth opening and eye
    aperture (of the eye span) and head yaw and pitch (degrees), from its landmarks, as the
    coverage diagnostics and the evaluate stage measure them (`faces.coverage`)."""
    measured = coverage.measure_records(folder, face_records(folder, holdout))
    return np.stack([measured.values[m] for m in EXPRESSION_MEASURES], axis=1).astype(np.float32)


def swap_labels(labels: dict) -> dict:
    """Per person ({side: `expression_labels`} of the two), {side: {"expression": what each
    face shows, "swap_expression": what a swap made from it should show}}, every measure in
    units of its spread within a person (pooled over both). A swap should show its source
    face's measures relative to that person's own neutral (their median) around the other
    person's: landmarks on a generic head read part of a face's shape as expression and pose
    (the sample data's glasses man reads a median pitch of 19 degrees, the hoodie man 5, though
    neither looks far up or down), and a swap pulled to the source's raw values would be pulled
    towards the source's face shape."""
    sides = list(labels)
    neutral = {side: np.median(values, axis=0) for side, values in labels.items()}
    spread = np.maximum(np.concatenate([labels[s] - neutral[s] for s in sides]).std(axis=0), 1e-3)
    out = {}
    for side, other in zip(sides, sides[::-1], strict=True):
        out[side] = {"expression": labels[side] / spread,
                     "swap_expression": (labels[side] - neutral[side] + neutral[other]) / spread}
    return out


def dataset(faces: np.ndarray, config: DataConfig, start_step: int = 0, side: int = 0,
            weights: np.ndarray | None = None, labels: dict | None = None):
    """Batches for steps start_step, start_step + 1, ...: dicts of the drawn faces, uint8
    `faces` [B, R, R, 5], and their augmentation parameters (`draw_augmentation`), one row
    per face. The training step applies them (`augmented`): in the step's graph the image
    work runs where the step does (a GPU), and on a CPU it does not compete with the step
    for the cores from tf.data's threads; and a batch split across replicas splits its
    parameters with it, so the replicas augment exactly as one device would. With `weights`
    (one per face, `sampling_weights`), faces are drawn in proportion to them. With `labels`
    ({name in LABELS: one row of `EXPRESSION_MEASURES` per face}), each batch also holds the
    drawn faces' rows under those names."""
    table = tf.constant(faces)
    label_tables = {name: tf.constant(rows, tf.float32) for name, rows in (labels or {}).items()}
    count, size = len(faces), faces.shape[1]
    logits = None if weights is None else tf.constant(np.log(np.asarray(weights, np.float64))[None], tf.float32)

    # No AutoGraph (tf.data's map converts by default; nothing here is Python control flow on
    # tensors): a process's first dataset took 0.64-0.99 s with it, 0.22-0.25 s without.
    @tf.autograph.experimental.do_not_convert
    def batch(step):
        seed = tf.stack([tf.cast(config.seed * 2 + side, tf.int64), step])
        draw, params = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if logits is None:
            indices = tf.random.stateless_uniform([config.batch_size], draw, 0, count, dtype=tf.int32)
        else:
            indices = tf.random.stateless_categorical(logits, config.batch_size, draw, dtype=tf.int32)[0]
        drawn = draw_augmentation(config.batch_size, size, config, params)
        for name, rows in label_tables.items():
            drawn[name] = tf.gather(rows, indices)
        return {"faces": tf.gather(table, indices), **drawn}

    return (
        tf.data.Dataset.range(start_step, 2**62)
        .map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def augmented(batch: dict, config: DataConfig) -> dict:
    """A batch from `dataset`, augmented: float32 `warped` (the input) and `target` in
    [-1, 1], `mask` and `eyes_mouth` in [0, 1]; and the batch's labels (`LABELS`), the yaw's
    sign turned for the faces the augmentation mirrored (the other measures do not change
    under a rotation, scaling, shift or mirror)."""
    del config  # the drawn parameters hold all of it
    out = apply_augmentation(batch["faces"], batch)
    names = [name for name in LABELS if name in batch]
    if names:  # (nothing added to the step of a run without labels)
        a0, a1, _, b0, b1, _ = tf.unstack(batch["affine"], axis=1)
        mirrored = (a0 * b1 - a1 * b0 < 0)[:, None]
        sign = tf.one_hot(_YAW, len(EXPRESSION_MEASURES), on_value=-2.0, off_value=0.0) + 1.0
        for name in names:
            out[name] = tf.where(mirrored, batch[name] * sign, batch[name])
    return out


def augment(stack, config: DataConfig, seed):
    """Augments a uint8 [B, R, R, 5] batch; every random draw derives from `seed`."""
    shape = tf.shape(stack)
    return apply_augmentation(stack, draw_augmentation(shape[0], shape[1], config, seed))


def draw_augmentation(batch, size, config: DataConfig, seed) -> dict:
    """The random part of augmenting `batch` faces of `size` pixels, one row per face:
    `affine` [B, 6], the output-to-input map (a0 x + a1 y + a2, b0 x + b1 y + b2) that
    rotates and scales about the centre, mirrors when flipping, then shifts; `gain` [B, 1, 1,
    3], the colour change; `warp` [B, 5, 5, 2], the coarse grid of the random warp, pixels."""
    seeds = tf.random.experimental.stateless_split(seed, 6)
    sizef = tf.cast(size, tf.float32)
    angle = tf.random.stateless_uniform([batch], seeds[0], -1, 1) * math.radians(config.rotation)
    zoom = 1.0 + tf.random.stateless_uniform([batch], seeds[1], -1, 1) * config.zoom
    shift = tf.random.stateless_uniform([batch, 2], seeds[2], -1, 1) * config.shift * sizef
    flip = tf.random.stateless_uniform([batch], seeds[3]) < (0.5 if config.flip else 0.0)
    sign = tf.where(flip, -1.0, 1.0)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    centre = (sizef - 1.0) / 2.0
    a0, a1 = cos * sign, -sin
    b0, b1 = sin * sign, cos
    a2 = centre - a0 * centre - a1 * centre + shift[:, 0]
    b2 = centre - b0 * centre - b1 * centre + shift[:, 1]
    return {
        "affine": tf.stack([a0, a1, a2, b0, b1, b2], axis=1),
        "gain": 1.0 + tf.random.stateless_uniform([batch, 1, 1, 3], seeds[4], -1, 1) * config.colour,
        "warp": tf.random.stateless_normal([batch, 5, 5, 2], seeds[5]) * config.warp * sizef,
    }


def apply_augmentation(stack, params: dict) -> dict:
    """The image work of augmenting a uint8 [B, R, R, 5] batch with drawn `params`: the
    affine map applied to image and masks together (bilinear, reflecting at the borders),
    the colour gain, and the random warp of the input. Gathers and arithmetic only, so XLA
    compiles it."""
    stack = tf.cast(stack, tf.float32) / 255.0
    size = tf.shape(stack)[1]
    sizef = tf.cast(size, tf.float32)
    ys, xs = tf.meshgrid(tf.range(sizef), tf.range(sizef), indexing="ij")
    affine = params["affine"][:, :, None, None]
    x = affine[:, 0] * xs + affine[:, 1] * ys + affine[:, 2]
    y = affine[:, 3] * xs + affine[:, 4] * ys + affine[:, 5]
    stack = bilinear_sample(stack, _reflect(x, sizef), _reflect(y, sizef))
    rgb, mask, eyes_mouth = stack[..., :3], stack[..., 3:4], stack[..., 4:5]
    rgb = tf.clip_by_value(rgb * params["gain"], 0.0, 1.0) * 2.0 - 1.0
    warped = _warp(rgb, params["warp"])
    return {"warped": warped, "target": rgb, "mask": mask, "eyes_mouth": eyes_mouth}


def _reflect(coordinate, size):
    """Coordinates folded back into [0, size - 1] by mirroring at the edges (d c b | a b c d | c b a)."""
    period = 2.0 * (size - 1.0)
    folded = tf.math.floormod(coordinate, period)
    return tf.where(folded > size - 1.0, period - folded, folded)


def random_warp(images, strength: float, seed):
    """Distorts [B, R, R, C] images by a smooth random field: a 5x5 grid of offsets with
    standard deviation `strength` * R, upsampled bicubically, sampled bilinearly."""
    shape = tf.shape(images)
    coarse = tf.random.stateless_normal([shape[0], 5, 5, 2], seed) * strength * tf.cast(shape[1], tf.float32)
    return _warp(images, coarse)


def _warp(images, coarse):
    size = images.shape[1]
    sizef = float(size)
    # The bicubic upsampling of the coarse grid, as two matrix products (XLA has no bicubic
    # resize): the weights are those of tf.image.resize, taken from it once, eagerly.
    with tf.init_scope():
        basis = tf.eye(coarse.shape[1])[:, :, None, None]  # one image per coarse row
        weights = tf.transpose(tf.image.resize(basis, [size, 1], method="bicubic")[:, :, 0, 0])
    flow = tf.einsum("yi,bijc,xj->byxc", weights, coarse, weights)
    ys, xs = tf.meshgrid(tf.range(sizef), tf.range(sizef), indexing="ij")
    x = tf.clip_by_value(xs[None] + flow[..., 0], 0.0, sizef - 1.0)
    y = tf.clip_by_value(ys[None] + flow[..., 1], 0.0, sizef - 1.0)
    return bilinear_sample(images, x, y)


def bilinear_sample(images, x, y):
    """images [B, H, W, C] sampled at float pixel coordinates x, y [B, H, W]."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0 = tf.cast(x0, tf.int32)
    y0 = tf.cast(y0, tf.int32)
    x1 = tf.minimum(x0 + 1, width - 1)
    y1 = tf.minimum(y0 + 1, height - 1)
    # One gather of the four corners from the images as rows [B * H * W, C].
    base = (tf.range(shape[0]) * height * width)[:, None, None]
    row0, row1 = base + y0 * width, base + y1 * width
    corners = tf.gather(tf.reshape(images, [-1, shape[3]]),
                        tf.stack([row0 + x0, row0 + x1, row1 + x0, row1 + x1], axis=-1))
    top = corners[..., 0, :] * (1 - fx) + corners[..., 1, :] * fx
    bottom = corners[..., 2, :] * (1 - fx) + corners[..., 3, :] * fx
    return top * (1 - fy) + bottom * fy
