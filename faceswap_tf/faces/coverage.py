"""What a face set covers: how far its mouths and eyes open and where its heads turn.

An autoencoder's decoder for B can only draw the expressions and poses B's footage shows. So
before training (right after extract) and in the evaluation report, the two face sets are
compared from their alignments alone (no image is read): the distribution of mouth opening,
eye aperture, yaw and pitch of each, and a plain warning where A goes beyond what B's faces
show (e.g. "A opens the mouth wider than 99% of B's faces in 38% of A's frames").

Head pose comes from the landmarks in the aligned crop (`faces.pose` with the crop as the
picture), so it does not depend on where the face was in its frame.
"""

import collections
import dataclasses
import os

import numpy as np

from faceswap_tf.errors import UserError
from faceswap_tf.faces import alignments, expression, pose

MEASURES = {  # name -> (label, unit)
    "mouth": ("mouth opening", "of the eye span"),
    "eyes": ("eye aperture", "of the eye span"),
    "yaw": ("yaw", "degrees"),
    "pitch": ("pitch", "degrees"),
}
PERCENTILES = (1, 5, 50, 95, 99)
EDGE = 1.0  # B's range is taken between its 1st and 99th percentiles: a stray face does not widen it
# How far beyond B's range a face of A must be to count: less is within the landmarks' own
# noise (a closed mouth measures 0.00 to 0.02 of the eye span), or too little to matter.
TOLERANCE = {"mouth": 0.03, "eyes": 0.01, "yaw": 3.0, "pitch": 3.0}
WARN_SHARE = 0.05  # a gap is worth a warning when this share of A's frames falls in it


@dataclasses.dataclass(frozen=True)
class FaceSetMeasures:
    name: str
    faces: int
    values: dict  # measure -> float array, one value per face

    def percentiles(self, measure: str) -> list[float]:
        return [float(v) for v in np.percentile(self.values[measure], PERCENTILES)]


def measure_records(name: str, records: list) -> FaceSetMeasures:
    """The measures of alignments records (landmarks in crop pixels, pose with the crop as the
    picture)."""
    if not records:
        raise UserError(f"{name}: no faces to measure")
    crop_points = np.stack([record.crop_landmarks() for record in records])
    poses = np.stack([pose.head_pose(points, (record.size, record.size))
                      for points, record in zip(crop_points, records, strict=True)])
    return FaceSetMeasures(name=name, faces=len(records), values={
        "mouth": expression.mouth_opening(crop_points), "eyes": expression.eye_aperture(crop_points),
        "yaw": poses[:, 0], "pitch": poses[:, 1]})


def measure_folder(folder: str, records: list | None = None) -> FaceSetMeasures:
    """The measures of an extract folder's faces (or of `records` of it, e.g. its training part)."""
    path = os.path.join(folder, alignments.FILE_NAME)
    if records is None:
        if not os.path.exists(path):
            raise UserError(f"{folder}: no {alignments.FILE_NAME}; run faceswap_tf.extract first")
        records = alignments.load(path)
    sources = collections.Counter(record.source for record in records)
    return measure_records(os.path.splitext(os.path.basename(sources.most_common(1)[0][0]))[0], records)


@dataclasses.dataclass(frozen=True)
class Gap:
    measure: str
    direction: str  # "above" or "below" B's range
    share: float  # of A's faces
    a_extreme: float  # A's furthest value that way
    b_edge: float  # the edge of B's range

    def sentence(self) -> str:
        label, unit = MEASURES[self.measure]
        wording = {
            ("mouth", "above"): "opens the mouth wider than",
            ("mouth", "below"): "closes the mouth further than",
            ("eyes", "above"): "opens the eyes wider than",
            ("eyes", "below"): "closes the eyes further than",
            ("yaw", "above"): "turns the head further (yaw, positive) than",
            ("yaw", "below"): "turns the head further (yaw, negative) than",
            ("pitch", "above"): "tilts the head further (pitch, positive) than",
            ("pitch", "below"): "tilts the head further (pitch, negative) than",
        }[(self.measure, self.direction)]
        return (f"A {wording} {100 - EDGE:.0f}% of B's faces in {self.share:.0%} of A's frames "
                f"(A's {label} reaches {self.a_extreme:.2f} {unit}; B's faces, {self.b_edge:.2f} "
                f"give or take {TOLERANCE[self.measure]:g})")


def b_range(b: FaceSetMeasures, measure: str) -> tuple[float, float]:
    """B's range of a measure: between its `EDGE` and 100 - `EDGE` percentiles."""
    low, high = np.percentile(b.values[measure], [EDGE, 100 - EDGE])
    return float(low), float(high)


def pose_beyond(b: FaceSetMeasures, yaw: float, pitch: float) -> float:
    """How far, in degrees, a head pose lies outside B's range of yaw and of pitch (the two
    added; 0 inside both): a pose B's decoder never saw drawn."""
    out = 0.0
    for measure, value in (("yaw", yaw), ("pitch", pitch)):
        low, high = b_range(b, measure)
        out += max(0.0, low - value) + max(0.0, value - high)
    return out


def gaps(a: FaceSetMeasures, b: FaceSetMeasures) -> list[Gap]:
    """Where A goes beyond B's faces, in a share of A's frames worth a warning."""
    found = []
    for measure in MEASURES:
        low, high = b_range(b, measure)
        low, high = low - TOLERANCE[measure], high + TOLERANCE[measure]
        values = a.values[measure]
        for direction, outside, extreme, edge in (("above", values > high, values.max(), high),
                                                  ("below", values < low, values.min(), low)):
            share = float(np.mean(outside))
            if share >= WARN_SHARE:
                edge = edge + TOLERANCE[measure] * (-1 if direction == "above" else 1)
                found.append(Gap(measure, direction, share, float(extreme), float(edge)))
    return found


def markdown(a: FaceSetMeasures, b: FaceSetMeasures) -> list[str]:
    """The comparison as Markdown lines: a table of percentiles and the warnings (or that B
    covers A)."""
    header = " | ".join(f"p{p}" for p in PERCENTILES)
    lines = [f"| measure | set | faces | {header} |", "|---|---|---|" + "---|" * len(PERCENTILES)]
    for measure, (label, unit) in MEASURES.items():
        digits = 3 if unit.startswith("of") else 1
        for who, faces in (("A", a), ("B", b)):
            values = " | ".join(f"{v:.{digits}f}" for v in faces.percentiles(measure))
            lines.append(f"| {label} ({unit}) | {who}: {faces.name} | {faces.faces} | {values} |")
    found = gaps(a, b)
    lines.append("")
    if found:
        lines += [f"- **warning**: {gap.sentence()}." for gap in found]
        lines.append("- B's decoder can only draw what B's faces show: add footage of B doing this, or "
                     "expect the swap to fall short there.")
    else:
        lines.append(f"- B's faces cover A's: in no measure do more than {WARN_SHARE:.0%} of A's frames go "
                     f"beyond {100 - 2 * EDGE:.0f}% of B's faces.")
    return lines


def rarity_weights(faces: FaceSetMeasures, strength: float = 1.0, neighbours: int = 8,
                   cap: float = 5.0) -> np.ndarray:
    """A sampling weight per face, higher for the faces whose expression and pose few others
    share: in the space of the four measures (each scaled by its spread), the distance to the
    face's k-th nearest neighbour, raised to the space's dimension (inverse density) times
    `strength` (0: every face alike; 1: as often as every region of the space). Normalised to
    a mean of 1 and capped at `cap` times it, so a stray landmark fit is not drawn all the time."""
    points = np.stack([faces.values[m] for m in MEASURES], axis=1).astype(np.float64)
    points = (points - points.mean(axis=0)) / np.maximum(points.std(axis=0), 1e-6)
    if strength <= 0 or len(points) <= neighbours:
        return np.ones(len(points))
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    reach = np.sort(distances, axis=1)[:, neighbours]  # column 0 is the face itself
    weights = (reach / np.median(reach)) ** (points.shape[1] * strength)
    for _ in range(50):  # capping lowers the mean, which lifts the capped faces again: repeat until it holds
        weights = weights / weights.mean()
        if weights.max() <= cap * (1 + 1e-6):
            break
        weights = np.minimum(weights, cap)
    return weights

