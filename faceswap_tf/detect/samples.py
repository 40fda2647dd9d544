"""The detector's faces: the dataset's crops as labelled samples, split by identity, augmented.

Every face of the manifest gives a real sample (the original crop: its person, `source`) and
a fake one (the swapped crop: `source` and `target`), and the same two again per re-encoded
CRF. The split is by identity: `test_identities` names the people held out; a sample is a
test sample when every person in it is one of them, a training sample when none is, and is
dropped otherwise (a swap of a test person into a training person's frame belongs to
neither). So no test pair appears in training in any role, and no real face of a test person
either. Validation is the last `validation` fraction of each training job's frames (later
frames, not random ones, so that near-identical neighbours do not leak). `calibration_identities`
names people kept out of training like the test people, whose real faces join the validation
real faces in choosing the threshold: the detector scores real faces of people it trained on
lower than anyone else's, so a threshold set on those alone sits too low for strangers.

A track is a run of `track_frames` consecutive frames of one job, kind and compression: the
unit of the video-level scores.

Self-blended faces (`self_blended`, after Shiohara and Yamasaki, "Detecting Deepfakes with
Self-Blended Images", CVPR 2022) are training fakes made from a real face alone: an altered
copy of the face (colour, sharpness, a small shift and scale) pasted back into it inside a
randomly deformed and feathered face-hull mask. They carry what any swap leaves (a blend
boundary, a face whose colour, sharpness or position disagrees with the head around it) and
nothing of one generator's texture or of who the person is, since the same person's real
face is the other label; and every real face of the training set gives one. Cross-blended faces
(`self_blended` with a donor) paste another real training face instead, its colour matched:
swaps made without a generator whose inner face is a real person's (Face X-ray's blended images).

Re-blended fakes (`reblended`) are the dataset's own swaps pasted back into their real crop
through a part of their mask only: the swap's side of a random feathered line across the face
(the upper face swapped and the real mouth kept, or the left half, or all but the chin...).
A swapper that follows the mouth less than the person does (every CPU-trained one so far)
teaches a detector that a closed mouth means a swap, and a neutral real face is then flagged;
a fake whose mouth is the real one breaks that shortcut, and the line it is cut along is one
more blend boundary to find.

Identity-blind features (`identity_indices`, the trainer's `identity_adversary`): a detector
trained on a few people learns, beside what a swap does, who they are, and gives a stranger's
real faces a score of his own; each face carries the index of the person whose frame it is cut
from, so that the step can train its features not to tell the training people apart.

Mouth-matched drawing (`mouth_matching`) attacks the same shortcut at its source, the data: each
face is drawn with a weight that gives the real and the swapped faces of a batch the same
distribution of mouth openings (as each crop shows it: the swap's own, fitted on the swapped
crop), so how far a mouth is open says nothing about the label.
"""

import dataclasses
import os

import cv2
import numpy as np
import tensorflow as tf

from faceswap_tf.detect import manifest as manifest_lib
from faceswap_tf.detect.model import gaussian_blur
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align, expression, masks
from faceswap_tf.framing import Framing


@dataclasses.dataclass(frozen=True)
class Sample:
    path: str
    label: int  # 1: swapped
    mask: str | None  # the blend weights of a fake
    people: frozenset
    job: str
    frame: int
    crf: int | None  # None: not re-encoded
    pair: str | None = None  # a fake's real crop: the same face, frame and encoding
    mouth: float | None = None  # the mouth opening the crop shows (faces.expression); None: no landmarks
    source: str | None = None  # the person whose frame the crop is cut from (real and swapped alike)

    @property
    def track(self) -> tuple:
        return (self.job, self.label, self.crf)


def samples_of(folder: str, found: manifest_lib.Manifest) -> list[Sample]:
    out = []
    for face in found.faces:
        job = found.jobs[face.job]
        people = {0: frozenset([job.source]), 1: frozenset([job.source, job.target])}
        mouths = [None if points is None else float(expression.mouth_opening(np.asarray(points)))
                  for points in (face.landmarks, face.fake_landmarks)]
        variants = [(None, {"real": face.real, "fake": face.fake})]
        variants += [(int(crf), paths) for crf, paths in sorted(face.crf.items())]
        for crf, paths in variants:
            for label, kind in ((0, "real"), (1, "fake")):
                out.append(Sample(os.path.join(folder, paths[kind]), label,
                                  os.path.join(folder, face.mask) if label else None,
                                  people[label], face.job, face.frame, crf,
                                  os.path.join(folder, paths["real"]) if label else None, mouths[label],
                                  job.source))
    return out


@dataclasses.dataclass
class Split:
    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    calibration: list[Sample] = dataclasses.field(default_factory=list)  # real faces only


def split(samples: list[Sample], test_identities: frozenset, validation: float,
          calibration_identities: frozenset = frozenset()) -> Split:
    """The identity split (module docstring); UserError if a part ends up without both labels."""
    known = frozenset().union(*(s.people for s in samples)) if samples else frozenset()
    for flag, wanted in (("--test_identities", test_identities),
                         ("--calibration_identities", calibration_identities)):
        unknown = wanted - known
        if unknown:
            raise UserError(f"{flag}: {', '.join(sorted(unknown))} not in the dataset "
                            f"(it holds {', '.join(sorted(known))})")
    if test_identities & calibration_identities:
        both = ", ".join(sorted(test_identities & calibration_identities))
        raise UserError(f"--calibration_identities: {both} also a test person; calibrate on others")
    test = [s for s in samples if s.people <= test_identities]
    calibration = [s for s in samples if s.label == 0 and s.people <= calibration_identities]
    pool = [s for s in samples if not s.people & (test_identities | calibration_identities)]
    frames = {}
    for s in pool:
        frames.setdefault(s.job, set()).add(s.frame)
    cut = {job: sorted(f)[int(len(f) * (1.0 - validation))] if validation else max(f) + 1
           for job, f in frames.items()}
    parts = Split([s for s in pool if s.frame < cut[s.job]], [s for s in pool if s.frame >= cut[s.job]], test,
                  calibration)
    for name in ("train", "validation", "test"):
        labels = {s.label for s in getattr(parts, name)}
        if labels != {0, 1}:
            found = "none" if not labels else "only real faces" if 0 in labels else "only swapped faces"
            raise UserError(f"--test_identities={','.join(sorted(test_identities))}: the {name} set would hold "
                            f"{found}; choose test people whose swaps and real faces are in the dataset, and "
                            "leave others for training")
    return parts


def load(samples: list[Sample], framing: Framing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 [N, R, R, 3], labels float32 [N], masks float32 [N, R, R, 1]) at the
    detector's view of the crops, mapped as the exported detector maps them (`tf_to_view`,
    bilinear in the graph): a detector of fine detail must see in training the pixels it is
    served, not an area-averaged version of them."""
    side = framing.resolution
    if not samples:
        return (np.zeros([0, side, side, 3], np.uint8), np.zeros([0], np.float32),
                np.zeros([0, side, side, 1], np.float32))
    images, masks = [], []
    for start in range(0, len(samples), 64):
        crops = np.stack([_read(s.path, cv2.IMREAD_COLOR) for s in samples[start:start + 64]])
        view = (framing.tf_to_view(tf.constant(crops)).numpy() + 1.0) * 127.5
        images.extend(np.clip(np.round(view), 0, 255).astype(np.uint8))
    for sample in samples:
        if sample.mask:
            masks.append(framing.to_view(_read(sample.mask, cv2.IMREAD_GRAYSCALE)).astype(np.float32) / 255.0)
        else:
            masks.append(np.zeros((framing.resolution,) * 2, np.float32))
    labels = np.array([s.label for s in samples], np.float32)
    return np.stack(images), labels, np.stack(masks)[..., None]


def _read(path: str, flags: int) -> np.ndarray:
    image = cv2.imread(path, flags)
    if image is None:
        raise UserError(f"{path}: missing or unreadable crop (the dataset is damaged; build it again)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


# --- augmentation -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Each applied to real and fake faces alike, so none of them marks a label."""

    jpeg: float = 0.5  # probability of a JPEG recompression, quality 30..95
    blur: float = 0.3  # of a Gaussian blur, sigma 0.3..1.5 view pixels
    resize: float = 0.3  # of a downscale to 40..90% and back up
    colour: float = 0.8  # of brightness, contrast, saturation and hue jitter
    flip: float = 0.5
    occlude: float = 0.0  # of thin sharp strokes drawn over the face (`occluded`): spectacles, strands, cables


def augment(image, mask, config: AugmentConfig):
    """One uint8 [R, R, 3] image and its float mask [R, R, 1] -> float32 image in [0, 1] and
    mask, the geometry applied to both (stacked), the rest to the image."""
    image = tf.image.convert_image_dtype(image, tf.float32)
    both = tf.concat([image, mask], axis=-1)
    both = tf.cond(tf.random.uniform([]) < config.flip, lambda: tf.image.flip_left_right(both), lambda: both)
    image, mask = both[..., :3], both[..., 3:]
    size = tf.shape(image)[:2]

    def maybe(probability, transform, x):
        return tf.cond(tf.random.uniform([]) < probability, lambda: transform(x), lambda: x)

    def colour(x):
        x = tf.image.random_brightness(x, 0.1)
        x = tf.image.random_contrast(x, 0.8, 1.2)
        x = tf.image.random_saturation(x, 0.8, 1.2)
        return tf.clip_by_value(tf.image.random_hue(x, 0.03), 0.0, 1.0)

    def resize(x):
        scale = tf.random.uniform([], 0.4, 0.9)
        small = tf.cast(tf.cast(size, tf.float32) * scale, tf.int32)
        return tf.image.resize(tf.image.resize(x, small, antialias=True), size)

    def blur(x):
        return gaussian_blur(x, tf.random.uniform([], 0.3, 1.5), 3)

    def jpeg(x):
        quality = tf.random.uniform([], 30, 96, tf.int32)
        return tf.image.adjust_jpeg_quality(x, quality)

    if config.occlude:  # (without it, the random draws are the ones runs made before it was an option)
        image, mask = tf.cond(tf.random.uniform([]) < config.occlude, lambda: occluded(image, mask),
                              lambda: (image, mask))
    image = maybe(config.colour, colour, image)
    image = maybe(config.resize, resize, image)
    image = maybe(config.blur, blur, image)
    image = maybe(config.jpeg, jpeg, image)
    return tf.ensure_shape(image, [None, None, 3]), mask


def occluded(image, mask, strokes: int = 3):
    """A [R, R, 3] float image in [0, 1] with up to `strokes` thin, sharp, antialiased strokes
    drawn over it, and its mask less where they cover it: an ellipse's outline, a mirrored pair
    of them joined by a bridge (a spectacle frame), or a straight segment (a strand of hair, a
    cable, a microphone's stand), each 0.7-2.5 pixels wide, dark or light, mostly opaque. Real
    faces carry such edges in front of them; a detector that reads fine detail must not take
    every sharp line across a face for a blend's seam (the glasses man's real faces, README,
    Detect). Drawn on real and swapped faces alike."""
    side = tf.cast(tf.shape(image)[0], tf.float32)
    ys, xs = tf.meshgrid(tf.range(side) + 0.5, tf.range(side) + 0.5, indexing="ij")

    def uniform(low, high, shape=()):
        return tf.random.uniform(shape, low, high)

    def ring(cx, cy, rx, ry):
        radius = tf.sqrt(tf.square((xs - cx) / rx) + tf.square((ys - cy) / ry))
        return tf.abs(radius - 1.0) * tf.minimum(rx, ry)

    def segment(x0, y0, x1, y1):
        dx, dy = x1 - x0, y1 - y0
        t = tf.clip_by_value(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0.0, 1.0)
        return tf.sqrt(tf.square(xs - x0 - t * dx) + tf.square(ys - y0 - t * dy))

    def spectacles():
        cy, gap = uniform(0.3, 0.55) * side, uniform(0.12, 0.2) * side
        rx, ry = uniform(0.09, 0.16) * side, uniform(0.06, 0.12) * side
        centre = side / 2 + uniform(-0.05, 0.05) * side
        left, right = centre - gap, centre + gap
        return tf.reduce_min(tf.stack([ring(left, cy, rx, ry), ring(right, cy, rx, ry),
                                       segment(left + rx, cy, right - rx, cy)]), axis=0)

    def one_ring():
        return ring(uniform(0.2, 0.8) * side, uniform(0.2, 0.8) * side, uniform(0.05, 0.25) * side,
                    uniform(0.05, 0.25) * side)

    def line():
        ends = uniform(0.0, 1.0, [4]) * side
        return segment(ends[0], ends[1], ends[2], ends[3])

    for index in range(strokes):
        distance = tf.switch_case(tf.random.uniform([], 0, 3, tf.int32), [spectacles, one_ring, line])
        width = uniform(0.7, 2.5)
        alpha = uniform(0.6, 1.0) * tf.clip_by_value(width / 2.0 + 0.5 - distance, 0.0, 1.0)[..., None]
        if index:  # the first stroke always, each other one half the time
            alpha *= tf.cast(uniform(0.0, 1.0) < 0.5, tf.float32)
        light = tf.random.uniform([]) < 0.3
        colour = tf.where(light, uniform(0.6, 1.0, [3]), uniform(0.0, 0.3, [3]))
        image = image * (1.0 - alpha) + colour * alpha
        mask = mask * (1.0 - alpha)
    return image, mask


# --- self-blended fakes -------------------------------------------------------------------

def template_mask(framing: Framing) -> np.ndarray:
    """float32 [R, R] in {0, 1}: the alignment template's face hull (jaw to brows) in the view,
    where an aligned face's hull lies give or take its pose and expression."""
    points = framing.points_to_view(align.template_points(framing.crop_size, framing.padding))
    return (masks.face_mask(points, framing.resolution) > 127).astype(np.float32)


def _affine(image, scale, shift, fill_mode="REFLECT"):
    """[H, W, C] float image resampled by a scale (x, y) about the centre and a shift (x, y) in
    pixels; outside it, `fill_mode` (ImageProjectiveTransformV3's: REFLECT, CONSTANT zeros)."""
    side = tf.cast(tf.shape(image)[0], tf.float32)
    centre = (side - 1.0) / 2.0
    # ImageProjectiveTransformV3 maps output pixels to input pixels.
    transform = tf.stack([1.0 / scale[0], 0.0, centre - (centre + shift[0]) / scale[0],
                          0.0, 1.0 / scale[1], centre - (centre + shift[1]) / scale[1], 0.0, 0.0])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode=fill_mode)[0]


def self_blended(image, template, donor=None):
    """A real face (uint8 [R, R, 3]) -> (uint8 swapped-like face, label 1, float mask [R, R, 1]):
    an altered copy of the face blended back into it (module docstring). `template` is
    `template_mask`'s [R, R] hull. With `donor` (another real crop, uint8 [R, R, 3]: another
    frame, usually another person), the pasted face is the donor's, its colour matched to the
    face's over the hull, then altered alike: a cross-blend (Li et al., "Face X-ray", CVPR 2020),
    a swap made without a generator."""
    pixels = int(image.shape[0])
    side = float(pixels)
    uniform = tf.random.uniform
    face = tf.image.convert_image_dtype(image, tf.float32)
    pasted = face if donor is None else _colour_matched(tf.image.convert_image_dtype(donor, tf.float32), face,
                                                        template)

    # The pasted face: its colour, its sharpness and its place each a little off, as a swap's.
    source = pasted * uniform([1, 1, 3], 0.94, 1.06) + uniform([1, 1, 3], -0.03, 0.03)
    source = tf.image.adjust_contrast(source, uniform([], 0.85, 1.15))
    kind = uniform([], 0, 4, tf.int32)
    sharpness = uniform([], 0.004, 0.012) * side

    def soft(x=source):  # computed only in the branches that use it
        return gaussian_blur(x, sharpness, int(np.ceil(3 * 0.012 * pixels)))

    small = tf.cast(side * uniform([], 0.35, 0.8), tf.int32)
    source = tf.switch_case(kind, [
        soft,  # blurred
        lambda: source + uniform([], 0.5, 1.5) * (source - soft()),  # sharpened
        lambda: tf.image.resize(tf.image.resize(source, [small, small], antialias=True),
                                tf.shape(source)[:2]),  # drawn at a lower resolution
        lambda: source])
    source = _affine(source, uniform([2], 0.96, 1.04), uniform([2], -0.02, 0.02) * side)

    # Where it is pasted: the face hull, deformed, shrunk or grown, feathered, partly opaque.
    hull = _affine(template[..., None], uniform([2], 0.8, 1.08), uniform([2], -0.03, 0.03) * side, "CONSTANT")
    hull = tf.cast(hull > uniform([], 0.3, 0.7), tf.float32)
    feather = uniform([], 0.005, 0.05) * side
    mask = gaussian_blur(hull, feather, int(np.ceil(3 * 0.05 * pixels)))
    opacity = tf.where(uniform([]) < 0.5, 1.0, uniform([], 0.6, 1.0))
    mask = tf.clip_by_value(mask * opacity, 0.0, 1.0)
    blended = tf.clip_by_value(source * mask + face * (1.0 - mask), 0.0, 1.0)
    return tf.image.convert_image_dtype(blended, tf.uint8, saturate=True), tf.constant(1.0), mask


def _colour_matched(donor, face, template):
    """The donor's channels moved to the face's mean and spread over the hull (Reinhard's
    transfer, in RGB: the faces are aligned, so the hull covers the same part of both). In
    TensorFlow, since it runs inside the tf.data stream; the converter's numpy/OpenCV
    `blend.colour_transfer` is the same idea in L*a*b* for frames."""
    weight = template[..., None]
    total = tf.reduce_sum(weight)

    def stats(x):
        mean = tf.reduce_sum(x * weight, axis=[0, 1]) / total
        spread = tf.sqrt(tf.reduce_sum(tf.square(x - mean) * weight, axis=[0, 1]) / total + 1e-6)
        return mean, spread

    (donor_mean, donor_spread), (face_mean, face_spread) = stats(donor), stats(face)
    return tf.clip_by_value((donor - donor_mean) * face_spread / donor_spread + face_mean, 0.0, 1.0)


def reblended(fake, real, mask):
    """A swapped face, its real crop (uint8 [R, R, 3]) and its mask [R, R, 1] -> (uint8 face,
    label 1, mask): the swap kept on one side of a random feathered line across the face, the
    real crop on the other (module docstring). The line passes within 30% of the half-side of
    the centre, so the swap keeps a good part of the face."""
    uniform = tf.random.uniform
    side = tf.shape(fake)[0]
    steps = (tf.cast(tf.range(side), tf.float32) + 0.5) / tf.cast(side, tf.float32) * 2.0 - 1.0
    y, x = tf.meshgrid(steps, steps, indexing="ij")
    angle = uniform([], 0.0, 2.0 * np.pi)
    region = tf.sigmoid((x * tf.cos(angle) + y * tf.sin(angle) - uniform([], -0.3, 0.3))
                        / uniform([], 0.02, 0.15))[..., None]
    face = tf.cast(fake, tf.float32) * region + tf.cast(real, tf.float32) * (1.0 - region)
    return tf.cast(tf.clip_by_value(tf.round(face), 0.0, 255.0), tf.uint8), tf.constant(1.0), mask * region


def mouth_matching(mouths, labels, bins: int = 8, cap: float = 4.0) -> np.ndarray:
    """Per face, a drawing weight (mean 1 within each label) under which the real faces' and
    the swapped faces' mouth openings (`Sample.mouth`) follow one distribution, their pooled one,
    in `bins` quantile bins; no face weighs more than `cap`, so a handful of rare swaps with an
    open mouth are not drawn over and over. Every face must have its mouth measured."""
    labels = np.asarray(labels)
    values = np.asarray(mouths, np.float64)
    edges = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    which = np.digitize(values, edges)
    pooled = np.bincount(which, minlength=bins) / len(values)
    weights = np.ones(len(values))
    for label in (0, 1):
        pick = labels == label
        if not pick.any():
            continue
        share = np.bincount(which[pick], minlength=bins) / pick.sum()
        ratio = pooled / np.maximum(share, 1e-12)
        weights[pick] = np.minimum(ratio[which[pick]], cap)
        weights[pick] /= weights[pick].mean()
    return weights


def label_mouth_correlation(mouths, labels, weights=None) -> float:
    """How much the mouth opening tells the label, faces drawn by `weights`: the weighted
    Pearson correlation of the two (negative: swaps show more closed mouths)."""
    covariance = np.cov(np.asarray(mouths, np.float64), np.asarray(labels, np.float64), aweights=weights)
    return float(covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1]))


def identity_indices(samples: list[Sample]) -> tuple[np.ndarray, list[str]]:
    """Each sample's frame person as an index into the sorted names of those people: ([N] int32, names)."""
    names = sorted({s.source for s in samples if s.source is not None})
    where = {name: i for i, name in enumerate(names)}
    missing = [s.path for s in samples if s.source not in where]
    if missing:
        raise UserError(f"{missing[0]}: its frame's person is not known")
    return np.array([where[s.source] for s in samples], np.int32), names


def dataset(images, labels, masks, batch_size: int, config: AugmentConfig, seed: int, start: int,
            self_blend: float = 0.0, template=None, reblend: float = 0.0, pairs=None, weights=None,
            cross_blend: float = 0.0, identities=None):
    """Endless shuffled, augmented, balanced batches: half real, half swapped faces, of which
    `self_blend` are real faces self-blended and `cross_blend` real faces with another real
    face blended in (`self_blended`, with `template_mask`'s hull), and `reblend` of the rest
    re-blended with their real crop (`reblended`; `pairs` [N] gives each swapped face's real
    crop as an index into `images`, -1 where there is none). With `weights` [N]
    (`mouth_matching`), each label's faces are drawn in proportion to them. With `identities`
    [N] (`identity_indices`) each batch is (images, labels, masks, identities), a blended fake
    carrying the index of the real face it was made on."""
    ids = np.zeros([len(labels)], np.int32) if identities is None else np.asarray(identities, np.int32)
    streams = []
    for label in (0.0, 1.0):
        pick = labels == label
        tensors = (images[pick], labels[pick], masks[pick], ids[pick])
        if label and reblend:
            paired = np.asarray(pairs)[pick]
            reals = images[np.where(paired >= 0, paired, np.flatnonzero(pick))]
            tensors += (reals, paired >= 0)
        if weights is None:
            part = tf.data.Dataset.from_tensor_slices(tensors).shuffle(
                int(pick.sum()), seed=seed + start, reshuffle_each_iteration=True).repeat()
        else:
            part = _drawn(tensors, np.asarray(weights)[pick], seed + start + int(label))
        if label and reblend:
            part = part.map(lambda x, y, m, i, r, ok: tf.cond(
                ok & (tf.random.uniform([]) < reblend), lambda: (*reblended(x, r, m), i), lambda: (x, y, m, i)),
                num_parallel_calls=tf.data.AUTOTUNE)
        streams.append(part)
    weights = None
    if self_blend or cross_blend:
        reals = (images[labels == 0], ids[labels == 0])
        hull = tf.constant(template, tf.float32)

        def shuffled(offset):
            return tf.data.Dataset.from_tensor_slices(reals).shuffle(
                len(reals[0]), seed=seed + start + offset, reshuffle_each_iteration=True).repeat()

        weights = [0.5, 0.5 * (1.0 - self_blend - cross_blend)]
        if self_blend:
            streams.append(shuffled(1).map(lambda x, i: (*self_blended(x, hull), i),
                                           num_parallel_calls=tf.data.AUTOTUNE))
            weights.append(0.5 * self_blend)
        if cross_blend:
            streams.append(tf.data.Dataset.zip(shuffled(2), shuffled(3)).map(
                lambda face, donor: (*self_blended(face[0], hull, donor[0]), face[1]),
                num_parallel_calls=tf.data.AUTOTUNE))
            weights.append(0.5 * cross_blend)
    mixed = tf.data.Dataset.sample_from_datasets(streams, weights, seed=seed + start)
    mixed = mixed.map(lambda x, y, m, i: (*_augmented(x, y, m, config), i), num_parallel_calls=tf.data.AUTOTUNE)
    if identities is None:
        mixed = mixed.map(lambda x, y, m, i: (x, y, m))
    return mixed.batch(batch_size, drop_remainder=True).prefetch(2)


def _drawn(tensors: tuple, weights: np.ndarray, seed: int) -> tf.data.Dataset:
    """An endless stream of the rows of `tensors`, each drawn with probability in proportion to
    its weight (with replacement)."""
    table = tuple(tf.constant(t) for t in tensors)
    logits = tf.constant(np.log(weights / weights.sum())[None], tf.float32)

    def row(key):
        index = tf.random.stateless_categorical(logits, 1, tf.stack([key, tf.constant(0, tf.int64)]))[0, 0]
        return tuple(tf.gather(t, index) for t in table)

    return tf.data.Dataset.random(seed=seed).map(row, num_parallel_calls=tf.data.AUTOTUNE)


def _augmented(image, label, mask, config):
    image, mask = augment(image, mask, config)
    return image, label, mask
