"""The evaluate stage: how good a swapped video is, measured as the eye sees it.

Each frame of the swapped video is paired with the original frame it was made from (found by
content, or from --start). In the original, dlib finds the faces, their 68 landmarks and
follows them from frame to frame (tracks); in the swapped frame it finds them again. Every
measure is taken on the swap AND on three controls (four with the model's run) rendered from
the same original frames, so each number is read against what a faithful video and what an
obvious fake score:

- `unmodified`: the original frame through a JPEG round trip (quality 90), the floor that
  encoding alone leaves;
- `still`: one face of B, pasted on every frame with the converter's own colour matching,
  mask and blending, following the head but never the expression: it carries B's identity
  perfectly, so identity alone cannot tell it from a swap;
- `jittered`: that paste moved by a random few percent every frame;
- `ceiling` (when the model's framing is known, --model_dir): A's own face reduced to the
  network's view at its resolution and pasted back through A's face hull with the converter's
  blending: what a perfect model of that resolution would score. Where the swap falls short
  of it the model is at fault; where the ceiling itself fails a band (detail, at 64 px), no
  model of that size can meet it.

Per face and frame (`metrics` has the formulas):
- identity: the dlib descriptor of the swapped face, retrieved among galleries of A, of B and
  of distractor people (--distractors); right when the nearest gallery is B's AND the
  distance to it is under dlib's same-person threshold (0.6). B's gallery is made of the
  faces of B the model held out of training where it held any out, so memorising B's
  training faces earns nothing;
- expression following: mouth opening and eye aperture (`faces.expression`) of the swapped
  face against the original's over time, per track: correlation and gain;
- sharpness: three octaves of detail inside the inner face, swapped against original, the
  octave furthest off as min(r, 1/r): blur and noise both score low;
- motion: the swapped face's landmarks, in the original face's aligned frame (the head's own
  movement taken out), against the original's, frame to frame: velocity correlation and
  speed ratio; a still paste does not move, a jittering one moves in its own way;
- own features: the structural similarity (SSIM) of the swapped frame's eye and mouth regions
  to the original's. A swap draws B's eyes and mouth; a model whose mask has holes there lets
  A's own show through, and then follows A's expression and detail perfectly while being no
  swap at all (a model trained with the eyes and mouth weighted 10 did exactly that);
- colour, seam and edge flicker (`metrics.colour_mismatch`): the swapped face's skin colour
  against the original's in CIE L*a*b* at the scale of lighting, over the whole skin (a face of
  another tone or lit otherwise), near the face's edge (a seam, dark blotches where it meets
  the frame), and how that edge changes from frame to frame (a flickering mask or colour);
- pose error: the rotation between the two head poses (`faces.pose`);
- background: PSNR outside the aligned crops of the faces found in either frame.

Frames the model trained on (from its run record) are reported apart from the held-out ones,
and the verdict is taken on held-out frames. The report opens with a verdict table (each
measure, the swap's value, the controls', the band and whether it is met), then what B's
training faces cover of A (`faces.coverage`), the frames where the swap's mouth is most closed
against the original's, held-out model metrics (with --model_dir), a contact sheet and the
per-frame values. `report.py` renders it.
"""

import collections
import dataclasses
import itertools
import json
import math
import os
import sys
import time

import cv2
import numpy as np

from faceswap_tf import data, exporter, files, media, metrics, report, run_record
from faceswap_tf.convert import blend, video
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align, alignments, coverage, detect, expression, identity, masks, pose
from faceswap_tf.framing import Framing
from faceswap_tf.progress import Progress

REPORT_FORMAT = "faceswap_tf-evaluation"
REPORT_VERSION = 3
VARIANTS = ("swapped", "unmodified", "still", "jittered", "ceiling")
SPLITS = ("held_out", "training", "unknown")
CONTROLS = VARIANTS[1:]
_NOT_FOR_CEILING = ("identity", "feature_similarity")  # bands that do not apply to A's own face
_THUMB = 32  # side of the thumbnails frames are matched by
_MATCH_FRAMES = 8  # swapped frames matched at once
_MAX_MATCH_ERROR = 12.0  # mean |difference| per 8-bit channel above which no stretch matches
_MIN_IOU = 0.3
_JPEG_QUALITY = 90
_JITTER = 0.03  # std of the jittered paste's shift (of the crop) and scale, and of its turn in radians
# Motion is compared over a tenth of a second: over a single frame at 30 frames/s the
# landmarks' own noise is as large as an expression's movement (an unmodified video's
# velocities then correlate at only 0.64 with its original's; over 3 frames at 0.91).
_MOTION_SECONDS = 0.1
_OPEN_MOUTH = 0.08  # of the eye span: an original mouth this open is worth looking at when the swap's is not


@dataclasses.dataclass(frozen=True)
class Band:
    """One line of the verdict: a summary value, the band it must meet, and how it is said."""

    key: str
    short: str
    label: str
    wanted: str
    passes: object  # value -> bool

    def check(self, value) -> bool | None:
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else bool(
            self.passes(value))


BANDS = (
    Band("identity", "identity", "identity: nearest gallery is B's and within 0.6 of it", ">= 95% of faces",
         lambda v: v >= 0.95),
    Band("mouth_correlation", "mouth correlation", "mouth opening follows A's: correlation", ">= 0.9",
         lambda v: v >= 0.9),
    Band("mouth_gain", "mouth gain", "mouth opening follows A's: gain (1 = opens as far)", ">= 0.8",
         lambda v: v >= 0.8),
    Band("eye_correlation", "eye correlation", "eye aperture follows A's: correlation", ">= 0.7",
         lambda v: v >= 0.7),
    Band("motion_correlation", "motion correlation", "moves as A's face moves: velocity correlation", ">= 0.7",
         lambda v: v >= 0.7),
    Band("motion_speed", "motion speed", "moves as much as A's face: speed ratio", "0.67 to 1.5",
         lambda v: 1 / 1.5 <= v <= 1.5),
    Band("sharpness", "detail", "detail against A's: the octave furthest off, min(r, 1/r)", ">= 0.6",
         lambda v: v >= 0.6),
    Band("feature_similarity", "own features",
         "eyes and mouth drawn by the swap, not A's showing through: SSIM to A's, median", "<= 0.75",
         lambda v: v <= 0.75),
    Band("colour", "colour", "skin colour matched to A's across the face: ΔE*ab, median", "<= 3",
         lambda v: v <= 3.0),
    Band("seam", "seam", "no seam where the face meets the frame: ΔE*ab at the face's edge, 90th percentile",
         "<= 4", lambda v: v <= 4.0),
    Band("colour_flicker", "edge flicker",
         "the face's edge steady from frame to frame: change of its ΔE*ab per frame, median", "<= 1",
         lambda v: v <= 1.0),
    Band("pose_rotation", "pose", "head pose error: rotation, median", "<= 3 degrees", lambda v: v <= 3.0),
    Band("background_psnr", "background", "background PSNR outside the faces", ">= 40 dB", lambda v: v >= 40.0),
)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    original: str
    swapped: str
    faces_a: str
    faces_b: str
    output_dir: str | None = None  # None: the swapped video's folder
    model_dir: str | None = None  # the training run: held-out frames and metrics
    start: float | None = None  # seconds into the original where the swapped video begins; None: found
    max_frames: int | None = None
    holdout: float | None = None  # None: the model's (config.json), else 0.2 as training's default
    distractors: tuple[str, ...] = ()  # videos, images or folders of other people
    gallery_size: int = 30
    min_face_size: int = 80
    sheet_rows: int = 6
    controls: bool = True
    control_identity_every: int = 10  # frames between identity checks of the controls

    def __post_init__(self):
        for ok, message in (
            (self.start is None or self.start >= 0, f"--start={self.start}: must be 0 or more"),
            (self.max_frames is None or self.max_frames >= 2,
             f"--max_frames={self.max_frames}: must be 2 or more"),
            (self.holdout is None or 0.0 <= self.holdout < 1.0, f"--holdout={self.holdout}: must be in [0, 1)"),
            (self.gallery_size >= 1, f"--gallery_size={self.gallery_size}: must be at least 1"),
            (self.sheet_rows >= 2, f"--sheet_rows={self.sheet_rows}: must be at least 2"),
            (self.control_identity_every >= 1,
             f"--control_identity_every={self.control_identity_every}: must be at least 1"),
        ):
            if not ok:
                raise UserError(message)

    def output_path(self, suffix: str) -> str:
        folder = self.output_dir or os.path.dirname(os.path.abspath(self.swapped))
        stem = os.path.splitext(os.path.basename(self.swapped))[0]
        return os.path.join(folder, f"{stem}_{suffix}")


@dataclasses.dataclass(frozen=True)
class FrameMatch:
    """Where the swapped video begins in the original, and how well its first frames match."""

    offset: int
    error: float  # mean |difference| of the thumbnails, of 255
    other_offset: int | None = None  # the best match elsewhere (not within a few frames)
    other_error: float | None = None

    @property
    def ambiguous(self) -> bool:
        return self.other_error is not None and self.other_error < 1.25 * self.error + 0.5


def run(config: EvaluateConfig, log=sys.stderr) -> dict:
    """Evaluates config.swapped against config.original; writes and returns the report."""
    started = time.perf_counter()
    for path in (config.original, config.swapped):
        if not media.is_video(path):
            raise UserError(f"{path}: not a video ({', '.join(sorted(media.VIDEO_EXTENSIONS))})")
    original, swapped = media.probe_video(config.original), media.probe_video(config.swapped)
    if (original.width, original.height) != (swapped.width, swapped.height):
        raise UserError(f"{config.swapped}: {swapped.width}x{swapped.height}, but {config.original} is "
                        f"{original.width}x{original.height}: it was not made from it")
    if original.fps and swapped.fps and abs(original.fps - swapped.fps) > 0.01 * original.fps:
        log.write(f"warning: {config.swapped} runs at {swapped.fps:g} frames/s and {config.original} at "
                  f"{original.fps:g}: frames are paired one to one all the same\n")
    record = run_record.read_checked(config.model_dir)[0] if config.model_dir else None
    holdout = _holdout(config, record)
    start = None if config.start is None else int(round(config.start * (original.fps or 25.0)))
    match = find_offset(config.original, config.swapped, start, log)
    how = "found by content" if start is None else f"--start={config.start}"
    log.write(f"{config.swapped}: from frame {match.offset} of {config.original} ({how}, mean difference "
              f"{match.error:.1f}/255)\n")
    if match.ambiguous:
        log.write(f"warning: frames from {match.other_offset} match about as well (mean difference "
                  f"{match.other_error:.1f}/255); if the pairing is wrong, pass --start\n")
    # Faces are cut from the frames as the model's were, or as A's extract cut them.
    framing = record.framing if record else run_record.describe_faces(config.faces_a, holdout)[1]
    held_out_from = _held_out_from(config, record, holdout)
    describer = identity.FaceDescriber()
    detector = detect.FaceDetector(detect.DetectorConfig(min_face_size=config.min_face_size))
    galleries, gallery_notes = _galleries(config, holdout, describer, log)
    held_out = _held_out(config, holdout, describer, galleries) if record else None
    controls = _Controls(config.faces_b, holdout, framing) if config.controls else None
    if config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
    measure = _FrameMeasure(describer, galleries, framing, detector, controls, config.control_identity_every)
    frames, sheet_frames = _measure_frames(config, match.offset, swapped.frames, measure, held_out_from, log)
    lag = max(1, round(_MOTION_SECONDS * (original.fps or 25.0)))
    b_training = _training_records(config.faces_b, holdout)
    a_faces = coverage.measure_folder(config.faces_a)
    b_faces = coverage.measure_folder(config.faces_b, b_training)
    summaries = {split: summarise(frames, measure.tracks, split, lag, b_faces) for split in SPLITS}
    verdict_split = next((s for s in ("held_out", "unknown", "training") if summaries[s]["frames"]), "training")
    results = {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION,
        "inputs": {
            "original": config.original, "swapped": config.swapped, "faces_a": config.faces_a,
            "faces_b": config.faces_b, "model_dir": config.model_dir, "holdout": holdout,
            "holdout_known": record is not None, "first_frame": match.offset, "frames": len(frames),
            "fps": original.fps, "frame_match": dataclasses.asdict(match) | {"ambiguous": match.ambiguous},
            "galleries": gallery_notes,
            "swapped_metadata": {k: v for k, v in video.read_metadata(config.swapped).items()
                                 if k in ("synthetic_media", "generator", "generator_model", "comment")},
        },
        "verdict_on": verdict_split,
        "verdict": verdict(summaries[verdict_split]),
        "summary": summaries,
        "mouth_most_closed": most_closed_mouths(frames),
        "coverage": {"a": a_faces.name, "b": b_faces.name, "lines": coverage.markdown(a_faces, b_faces),
                     "gaps": [dataclasses.asdict(gap) for gap in coverage.gaps(a_faces, b_faces)]},
        "held_out_model": held_out() if held_out else None,
        "frames": frames,
    }
    if summaries["training"]["frames"]:
        log.write(f"warning: {summaries['training']['frames']} of the {len(frames)} frames evaluated were "
                  f"training frames of the model (it learnt them); they are reported apart and the verdict "
                  f"is taken on the {summaries[verdict_split]['frames']} "
                  f"{verdict_split.replace('_', '-')} ones\n")
    results["seconds"] = round(time.perf_counter() - started, 1)
    files.write_atomic(config.output_path("report.json"), json.dumps(_finite(results), indent=1) + "\n")
    sheet_path = config.output_path("contact_sheet.png")
    rows = _sheet_rows(frames, sheet_frames, results["mouth_most_closed"], config.sheet_rows)
    video.write_image(sheet_path, report.contact_sheet(rows), video.synthetic_tags(
        f"Synthetic media: original | swapped frames of {os.path.basename(config.swapped)}, "
        f"made by {video.GENERATOR}", results["inputs"]["swapped_metadata"].get("generator_model", "unknown")))
    files.write_atomic(config.output_path("report.md"), report.markdown(results, os.path.basename(sheet_path)))
    for line in report.summary_lines(results):
        log.write(line + "\n")
    log.write(f"wrote {config.output_path('report.md')}, {config.output_path('report.json')} "
              f"and {sheet_path} ({results['seconds']:.0f} s)\n")
    return results


def _holdout(config: EvaluateConfig, record: run_record.RunRecord | None) -> float:
    """The held-out share: the one the model was trained with, so that held-out means held out."""
    trained = record.holdout if record else None
    if trained is not None and config.holdout is not None and abs(trained - config.holdout) > 1e-9:
        raise UserError(f"--holdout={config.holdout}: {config.model_dir} was trained with --holdout={trained}, "
                        "which decides the faces it never saw; leave --holdout out")
    holdout = trained if trained is not None else (0.2 if config.holdout is None else config.holdout)
    if record and holdout <= 0:
        raise UserError(f"{config.model_dir}: trained with --holdout=0, so it has no held-out faces to measure")
    return holdout


def _held_out_from(config: EvaluateConfig, record, holdout: float) -> int | None:
    """The first frame of the original the model did not train on; None if the model never
    saw this video (or no model was given and A's faces do not come from it)."""
    faces = record.faces["a"] if record else run_record.describe_faces(config.faces_a, holdout)[0]
    return faces.held_out_from.get(os.path.abspath(config.original))


def _training_records(folder: str, holdout: float) -> list:
    return run_record.split_holdout(alignments.load(os.path.join(folder, alignments.FILE_NAME)), holdout)[0]


def _galleries(config: EvaluateConfig, holdout: float, describer, log):
    """The identity galleries: A's training faces, B's held-out faces (its training faces if
    none are held out), and the distractors; and a note of what each is made of."""
    galleries = {"a": metrics.gallery(describer, config.faces_a, holdout, config.gallery_size)}
    notes = {"a": f"{len(galleries['a'])} training faces of A"}
    try:
        held = (metrics.aligned_faces(config.faces_b, holdout, "held", config.gallery_size)
                if holdout > 0 else None)
    except UserError:
        held = None
    if held is not None:
        galleries["b"] = identity.Gallery(metrics.describe(describer, held))
        notes["b"] = f"{len(galleries['b'])} held-out faces of B (never trained on)"
    else:
        galleries["b"] = metrics.gallery(describer, config.faces_b, holdout, config.gallery_size)
        notes["b"] = f"{len(galleries['b'])} training faces of B (the model holds none out)"
    pair_sources = {record.source for folder in (config.faces_a, config.faces_b)
                    for record in alignments.load(os.path.join(folder, alignments.FILE_NAME))}
    # Other people's footage has faces of any size: the finder is not the one tuned to this video.
    finder = detect.FaceDetector(detect.DetectorConfig(min_face_size=40)) if config.distractors else None
    others = identity.distractor_galleries(config.distractors, finder, describer,
                                           exclude=pair_sources | {config.original, config.swapped}, log=log)
    for name, gallery in others.items():
        galleries[f"other:{name}"] = gallery
    notes["distractors"] = sorted(others)
    if not others:
        log.write("note: no --distractors: identity is retrieved between A and B only, which any B-like "
                  "face passes\n")
    return galleries, notes


def _decoded(path: str, log):
    """The frames of a video; a video that stops decoding part-way ends there, with a warning."""
    try:
        yield from media.iter_video(path)
    except media.DecodeError as error:
        log.write(f"warning: {error}; the frames before are used\n")


def find_offset(original: str, swapped: str, start: int | None = None, log=sys.stderr) -> FrameMatch:
    """Where `swapped` begins in `original`: its first frames' thumbnails matched against every
    stretch of the original (or only the one at `start`). A swap changes only the faces, so
    the true stretch differs little. Memory stays constant however long the videos are."""
    def thumb(frame):
        return cv2.resize(frame, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)

    ours = [thumb(frame) for frame in itertools.islice(_decoded(swapped, log), _MATCH_FRAMES)]
    sources = _decoded(original, log)
    if start is not None:
        sources = itertools.islice(sources, start, start + len(ours))
    window, errors = collections.deque(maxlen=len(ours)), []
    for frame in sources:
        window.append(thumb(frame))
        if len(window) == len(ours):
            errors.append(float(np.mean([np.abs(a - b).mean() for a, b in zip(window, ours, strict=True)])))
    if not errors:
        raise UserError(f"{swapped}: longer than {original} from frame {start or 0}, so not made from it")
    best = int(np.argmin(errors))
    if errors[best] > _MAX_MATCH_ERROR:
        if start is None:
            raise UserError(f"{swapped}: no stretch of {original} looks like it (mean difference "
                            f"{errors[best]:.0f}/255 at best); pass --start if it was made from it")
        raise UserError(f"{swapped}: does not look like {original} from frame {start} (--start; mean "
                        f"difference {errors[best]:.0f}/255)")
    others = [(error, i) for i, error in enumerate(errors) if abs(i - best) > _MATCH_FRAMES]
    other_error, other = min(others) if others else (None, None)
    return FrameMatch((start or 0) + best, errors[best], other, other_error)


class _Controls:
    """Renders the controls of an original frame: the JPEG round trip, and one face of B
    (its training face with the median mouth opening) pasted still and jittered, with the
    converter's colour matching, mask shaping and blending at their default settings; when
    `framing` has the network's view, the ceiling: A's own face through that view."""

    def __init__(self, faces_b: str, holdout: float, framing: Framing, erode: float = 0.02,
                 feather: float = 0.03, colour: str = "local"):
        records = _training_records(faces_b, holdout)
        opening = expression.mouth_opening(np.stack([r.crop_landmarks() for r in records]))
        chosen = records[int(np.argsort(opening)[len(opening) // 2])]
        crop = data.read_crop(faces_b, chosen)
        self.framing = Framing(chosen.size, chosen.padding)
        if (chosen.size, chosen.padding) != (framing.crop_size, framing.padding):
            raise UserError(f"{faces_b}: crops of {chosen.size} px, padding {chosen.padding}, but the swap's "
                            f"faces are framed {framing.crop_size} px, padding {framing.padding}")
        self.landmarks = chosen.crop_landmarks()
        hull = masks.face_mask(self.landmarks, chosen.size).astype(np.float32) / 255.0
        self.face, self.mask = crop, blend.shape_mask(hull, erode, feather)
        self.colour, self.erode, self.feather = colour, erode, feather
        self.view = framing if framing.resolution else None
        if self.view is not None:  # the crop pixels a network's output reaches
            self.footprint = framing.from_view(np.ones((framing.resolution,) * 2, np.float32))
        self.source = f"{chosen.file} (mouth opening {float(np.median(opening)):.2f}, the median of B's)"

    def __call__(self, index: int, frame: np.ndarray, faces: list[detect.Face]) -> dict:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY,
                                                                                 _JPEG_QUALITY])
        out = {"unmodified": cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
               "still": frame.copy(), "jittered": frame.copy()}
        if self.view is not None:
            out["ceiling"] = frame.copy()
        rng = np.random.default_rng(index)  # the same jitter at every run
        size = self.framing.crop_size
        for face in faces:
            matrix = self.framing.crop_matrix(face.landmarks)
            if self.view is not None:
                self._ceiling(out["ceiling"], frame, face, matrix)
            for name in ("still", "jittered"):
                placed = matrix
                if name == "jittered":
                    turn, scale = rng.normal(0.0, _JITTER), 1.0 + rng.normal(0.0, _JITTER)
                    jitter = cv2.getRotationMatrix2D((size / 2, size / 2), math.degrees(turn), scale)
                    jitter[:, 2] += rng.normal(0.0, _JITTER * size, 2)
                    placed = jitter @ np.vstack([matrix, [0.0, 0.0, 1.0]])
                target = self.framing.crop(frame, placed)
                coloured = blend.colour_transfer(self.face, target, self.mask, self.colour, self.landmarks)
                blend.paste(out[name], coloured, self.mask, placed)
        return out

    def _ceiling(self, out: np.ndarray, frame: np.ndarray, face: detect.Face, matrix: np.ndarray) -> None:
        """A's face as the network sees it (its view, at its resolution), scaled back up as the
        converter scales a swap (bilinear) and pasted through A's own face hull, within the
        view as the converter's mask is."""
        size = self.framing.crop_size
        back = self.view.from_view(self.view.to_view(self.framing.crop(frame, matrix)), reflect=True)
        hull = masks.face_mask(align.transform_points(matrix, face.landmarks), size).astype(np.float32) / 255.0
        blend.paste(out, back, blend.shape_mask(hull * self.footprint, self.erode, self.feather), matrix)


@dataclasses.dataclass
class _Track:
    """One original face followed through the frames: per variant, its inner landmarks in the
    original face's aligned crop (fractions of the crop), and the frames they belong to."""

    frames: list = dataclasses.field(default_factory=list)
    points: dict = dataclasses.field(default_factory=lambda: {v: [] for v in ("original", *VARIANTS)})


class _FrameMeasure:
    """The measurements of one original frame, its swapped version and the controls."""

    def __init__(self, describer, galleries, framing: Framing, detector, controls: _Controls | None,
                 control_identity_every: int):
        self.describer, self.galleries = describer, galleries
        self.framing, self.detector, self.controls = framing, detector, controls
        self.control_identity_every = control_identity_every
        self.tracks: dict[int, _Track] = collections.defaultdict(_Track)
        self._tracker = _Tracker()
        self._colour = {}  # (track, variant) -> (frame, its last colour mismatch)

    def __call__(self, index: int, source: np.ndarray, swapped: np.ndarray) -> dict:
        height, width = source.shape[:2]
        originals, candidates = self.detector(source), self.detector(swapped)
        # Frame -> aligned-crop matrices of the faces found in either frame, each fitted once.
        matrices = [self.framing.crop_matrix(face.landmarks) for face in originals + candidates]
        variants = {"swapped": swapped}
        if self.controls is not None:
            variants.update(self.controls(index, source, originals))
        grey = {name: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
                for name, image in {"original": source, **variants}.items()}
        faces = []
        own = matrices[:len(originals)]
        for track, face, matrix in zip(self._tracker(originals), originals, own, strict=True):
            match = _best_match(face, candidates)
            landmarks = {"original": face.landmarks, "swapped": None if match is None else match.landmarks}
            for name in CONTROLS:
                if name in variants:  # refitted where the original face is: no detection needed
                    landmarks[name] = self.detector.landmarks(variants[name], face.box)
            images = {"original": source, **variants}
            faces.append(self._face(index, track, face, matrix, landmarks, images, grey, (width, height)))
        # The background leaves out the crops of the faces found in either frame: a face the
        # converter tracked where this detector missed it in the original is not background.
        crops = np.zeros((height, width), np.uint8)
        for matrix in matrices:
            cv2.fillConvexPoly(crops, np.round(self.framing.crop_outline(matrix)).astype(np.int32), 1)
        background = crops == 0
        entry = {"frame": index, "faces": faces}
        for name in ("swapped", "unmodified"):
            if name in variants:
                error = (metrics.mse(source[background], variants[name][background])
                         if background.any() else None)
                entry[f"background_psnr_{name}"] = metrics.psnr_of_mse(error) if error is not None else None
                entry[f"background_mse_{name}"] = error
        return entry

    def _face(self, index, track, face, matrix, landmarks, images, grey, size) -> dict:
        # Colour and seam in the original face's aligned crop: the same scale for every face.
        crops = {name: self.framing.crop(image, matrix) for name, image in images.items()}
        in_crop = align.transform_points(matrix, face.landmarks)
        colour = metrics.colour_mismatch(crops.pop("original"), crops, in_crop)
        inner = masks.face_mask(face.landmarks[align.INNER], grey["original"].shape) > 127
        scale = max(0.5, float(expression.eye_span(face.landmarks)) / 90.0)
        box = _region(inner, margin=int(8 * scale) + 2)
        detail = {name: metrics.band_energies(image[box], inner[box], scale) for name, image in grey.items()}
        regions = masks.region_masks(face.landmarks, grey["original"].shape)
        features = (regions["eyes"] > 127) | (regions["mouth"] > 127)
        near = _region(features, margin=8)
        similar = {name: float(np.mean(metrics.ssim_map(grey["original"][near], image[near])[features[near]]))
                   for name, image in grey.items() if name != "original"}
        original_pose = pose.head_pose(face.landmarks, size)
        crop_size = self.framing.crop_size  # the pose as the coverage diagnostics take it, from the crop
        crop_pose = pose.head_pose(in_crop, (crop_size, crop_size))
        entry = {"track": track, "box": list(face.box), "found": landmarks["swapped"] is not None,
                 "original": {"mouth": round(float(expression.mouth_opening(face.landmarks)), 4),
                              "eyes": round(float(expression.eye_aperture(face.landmarks)), 4),
                              "pose": original_pose.round(2).tolist(),
                              "crop_pose": crop_pose[:2].round(2).tolist()}}
        history = self.tracks[track]
        history.frames.append(index)
        history.points["original"].append(_inner_points(matrix, face.landmarks, self.framing.crop_size))
        for name in VARIANTS:
            points = landmarks.get(name)
            history.points[name].append(_inner_points(matrix, points, self.framing.crop_size))
            if points is None:
                continue
            ratios = detail[name] / np.maximum(detail["original"], 1e-9)
            variant_pose = pose.head_pose(points, size)
            values = {"mouth": round(float(expression.mouth_opening(points)), 4),
                      "eyes": round(float(expression.eye_aperture(points)), 4),
                      "detail_ratios": [round(float(r), 4) for r in ratios],
                      "sharpness": round(metrics.sharpness(ratios), 4),
                      "feature_similarity": round(similar[name], 4),
                      "pose_error": round(pose.rotation_between(original_pose, variant_pose), 2),
                      "colour": round(colour[name].colour, 3), "seam": round(colour[name].seam, 3)}
            before = self._colour.get((track, name))
            if before is not None and before[0] == index - 1:
                values["colour_flicker"] = round(metrics.colour_flicker(before[1], colour[name]), 3)
            self._colour[(track, name)] = (index, colour[name])
            if name == "swapped" or (name != "ceiling" and index % self.control_identity_every == 0):
                values.update(self._identity(images[name], points))
            entry[name] = values
        return entry

    def _identity(self, image: np.ndarray, landmarks: np.ndarray) -> dict:
        matrix = self.framing.crop_matrix(landmarks)
        crop = self.framing.crop(image, matrix)
        descriptor = self.describer.describe(crop, align.transform_points(matrix, landmarks))
        distances = {name: gallery.distance(descriptor) for name, gallery in self.galleries.items()}
        nearest = min(distances, key=distances.get)
        return {"nearest": nearest, "distance_a": round(distances["a"], 4),
                "distance_b": round(distances["b"], 4),
                "nearest_other": round(min((d for n, d in distances.items() if n not in ("a", "b")),
                                           default=math.inf), 4),
                "is_b": nearest == "b" and distances["b"] < identity.DEFAULT_MATCH_DISTANCE}


class _Tracker:
    """Track ids for each frame's original faces (the previous frame's face overlapping most)."""

    def __init__(self):
        from faceswap_tf.convert.tracks import Tracks

        self._tracks = Tracks()

    def __call__(self, faces: list[detect.Face]) -> list[int]:
        return [tracked.track for tracked in self._tracks(faces)]


def _inner_points(matrix: np.ndarray, landmarks: np.ndarray | None, size: int) -> np.ndarray:
    """The 51 inner landmarks in the original face's aligned crop, as fractions of it."""
    if landmarks is None:
        return np.full((51, 2), np.nan)
    return align.transform_points(matrix, np.asarray(landmarks)[align.INNER]) / size


def _region(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return (slice(max(0, ys.min() - margin), min(height, ys.max() + margin + 1)),
            slice(max(0, xs.min() - margin), min(width, xs.max() + margin + 1)))


def _best_match(face: detect.Face, candidates: list[detect.Face]) -> detect.Face | None:
    scored = [(detect.iou(face.box, other.box), other) for other in candidates]
    scored = [(score, other) for score, other in scored if score >= _MIN_IOU]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def _measure_frames(config, offset, expected, measure, held_out_from, log) -> tuple[list[dict], dict]:
    """Per-frame entries, and the (original, swapped) frames kept for the contact sheet by
    frame number: a few spread over the video, and the few where the swapped mouth falls
    furthest short of the original's (kept as they come, so memory stays small)."""
    count = min(n for n in (expected, config.max_frames) if n) if (expected or config.max_frames) else None
    spread = set(np.linspace(0, (count or 30 * config.sheet_rows) - 1, config.sheet_rows).round().astype(int))
    sources = itertools.islice(_decoded(config.original, log), offset, None)
    swaps = itertools.islice(_decoded(config.swapped, log), config.max_frames)
    frames, kept, closed = [], {}, []
    progress = Progress(count, "frames", stream=log)
    for index, (source, swapped) in enumerate(zip(sources, swaps, strict=False)):  # either may end first
        entry = measure(offset + index, source, swapped)
        entry["held_out"] = None if held_out_from is None else offset + index >= held_out_from
        frames.append(entry)
        if index in spread:
            kept[entry["frame"]] = (source, swapped)
        short = max((f["original"]["mouth"] - f["swapped"]["mouth"] for f in entry["faces"] if "swapped" in f),
                    default=0.0)
        if short > 0.05:
            closed = sorted(closed + [(short, entry["frame"], source, swapped)], key=lambda c: -c[0])[:3]
        progress.update()
    progress.close()
    if len(frames) < 2:
        raise UserError(f"{config.swapped}: fewer than 2 frames to compare with {config.original}")
    kept.update({frame: (source, swapped) for _, frame, source, swapped in closed})
    return frames, kept


def _sheet_rows(frames: list[dict], kept: dict, closed: list[dict], rows: int) -> list:
    """(entry, original, swapped, mouth falls short) rows in frame order: up to half of them the
    frames where the swapped mouth is most closed against the original's, the rest spread."""
    by_frame = {entry["frame"]: entry for entry in frames}
    worst = [c["frame"] for c in closed if c["frame"] in kept][: rows // 2]
    spread = [f for f in sorted(kept) if f not in worst]
    if len(spread) > rows - len(worst):
        step = len(spread) / (rows - len(worst))
        spread = [spread[int(i * step)] for i in range(rows - len(worst))]
    return [(by_frame[f], *kept[f], f in worst) for f in sorted(spread + worst)]


# --- summaries ----------------------------------------------------------------------------

def _in_split(entry: dict, split: str) -> bool:
    return {"held_out": entry["held_out"] is True, "training": entry["held_out"] is False,
            "unknown": entry["held_out"] is None}[split]


def summarise(frames: list[dict], tracks: dict, split: str, lag: int = 3,
              b_faces: coverage.FaceSetMeasures | None = None) -> dict:
    """The summary of the frames of one split ("held_out", "training", "unknown"): per variant,
    every measure of the verdict and what it is made of; motion over `lag` frames. With B's
    training faces (`b_faces`), the pose error apart for the faces whose pose B's faces cover
    and for those beyond them (`coverage.pose_beyond`)."""
    chosen = [entry for entry in frames if _in_split(entry, split)]
    faces = [face for entry in chosen for face in entry["faces"]]
    out = {"frames": len(chosen), "faces": len(faces),
           "faces_found_in_swapped": sum(face["found"] for face in faces)}
    if not faces:
        return out
    wanted = {entry["frame"] for entry in chosen}
    beyond_b = ([coverage.pose_beyond(b_faces, *face["original"]["crop_pose"]) > 0 for face in faces]
                if b_faces is not None else None)
    for name in VARIANTS:
        if not any(name in face for face in faces):
            continue
        measured = [face[name] for face in faces if name in face]
        checked = [face[name] for face in faces if name in face and "is_b" in face[name]]
        if name == "swapped":  # a face the detector cannot find again is not B's either
            checked += [{"is_b": False, "nearest": None}] * (len(faces) - len(measured))
        summary = {
            "identity": float(np.mean([c["is_b"] for c in checked])) if checked else None,
            "identity_faces": len(checked),
            "nearest": dict(collections.Counter(_who(c["nearest"]) for c in checked)),
            "distance_b": _median([c["distance_b"] for c in checked if "distance_b" in c]),
            "distance_a": _median([c["distance_a"] for c in checked if "distance_a" in c]),
            "pose_rotation": _median([m["pose_error"] for m in measured]),
            "detail_ratios": np.median([m["detail_ratios"] for m in measured], axis=0).round(4).tolist(),
        }
        summary["sharpness"] = round(metrics.sharpness(summary["detail_ratios"]), 4)
        summary["feature_similarity"] = _median([m.get("feature_similarity") for m in measured])
        for key in ("colour", "seam", "colour_flicker"):
            summary[key] = _median([m.get(key) for m in measured])
        if beyond_b is not None:
            for key, outside in (("covered", False), ("beyond", True)):
                errors = [face[name]["pose_error"] for face, out in zip(faces, beyond_b, strict=True)
                          if name in face and out == outside]
                summary[f"pose_rotation_{key}"], summary[f"pose_faces_{key}"] = _median(errors), len(errors)
        for feature in ("mouth", "eyes"):
            series = _series(chosen, name, feature)
            summary[f"{'eye' if feature == 'eyes' else feature}_following"] = series
        summary["mouth_correlation"] = summary["mouth_following"]["correlation"]
        summary["mouth_gain"] = summary["mouth_following"]["gain"]
        summary["eye_correlation"] = summary["eye_following"]["correlation"]
        pairs = [(np.array([p for f, p in zip(t.frames, t.points["original"], strict=True) if f in wanted]),
                  np.array([p for f, p in zip(t.frames, t.points[name], strict=True) if f in wanted]))
                 for t in tracks.values()]
        moved = metrics.motion(pairs, lag)
        summary["motion_correlation"], summary["motion_speed"] = moved["correlation"], moved["speed"]
        if name in ("swapped", "unmodified"):
            key = f"background_mse_{name}"
            errors = [e[key] for e in chosen if e.get(key) is not None]
            summary["background_psnr"] = metrics.psnr_of_mse(float(np.mean(errors))) if errors else None
            summary["background_psnr_worst"] = metrics.psnr_of_mse(float(np.max(errors))) if errors else None
        out[name] = summary
    return out


def _who(nearest: str | None) -> str:
    if nearest is None:
        return "not found"
    return {"a": "A", "b": "B"}.get(nearest, "another person")


def _median(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(values)) if values else None


def _series(entries: list[dict], variant: str, feature: str) -> dict:
    """`metrics.following` of a feature, pooled over the tracks (each centred on its own mean,
    since two people's resting faces differ)."""
    per_track = collections.defaultdict(lambda: ([], []))
    for entry in entries:
        for face in entry["faces"]:
            if variant in face:
                per_track[face["track"]][0].append(face["original"][feature])
                per_track[face["track"]][1].append(face[variant][feature])
    originals, variants = [], []
    for o, v in per_track.values():
        if len(o) >= 3:
            originals.append(np.array(o) - np.mean(o))
            variants.append(np.array(v) - np.mean(v))
    if not originals:
        return metrics.following([], [])
    return metrics.following(np.concatenate(originals), np.concatenate(variants))


def verdict(summary: dict) -> list[dict]:
    """Per band: the swap's value, the controls', and whether each meets the band."""
    rows = []
    for band in BANDS:
        row = {"key": band.key, "short": band.short, "label": band.label, "band": band.wanted}
        for name in VARIANTS:
            value = summary.get(name, {}).get(band.key)
            row[name] = value
            applies = name != "ceiling" or band.key not in _NOT_FOR_CEILING
            row[f"{name}_passes"] = band.check(value) if applies else None
        rows.append(row)
    return rows


def most_closed_mouths(frames: list[dict], count: int = 5) -> list[dict]:
    """The frames where the swapped mouth is most closed against the original's open one."""
    rows = [{"frame": entry["frame"], "original": face["original"]["mouth"],
             "swapped": face["swapped"]["mouth"]} for entry in frames for face in entry["faces"]
            if "swapped" in face and face["original"]["mouth"] >= _OPEN_MOUTH]
    rows.sort(key=lambda r: r["swapped"] - r["original"])
    return [r for r in rows if r["swapped"] < r["original"]][:count]


def _held_out(config: EvaluateConfig, holdout: float, describer, galleries):
    """The held-out measurement, prepared now (so that a model problem shows before the long
    part) and run when called."""
    encoder, decoders, step, record = exporter.restore_generator(config.model_dir)
    evaluation = metrics.HeldOutEvaluation(
        {"a": config.faces_a, "b": config.faces_b}, holdout, record.framing, describer,
        galleries={"a": galleries["a"], "b": galleries["b"]})

    def decode(side, views):
        out = decoders[side](encoder(views, training=False), training=False)
        return out["rgb"], out["mask"]

    def measure() -> dict:
        return {"step": step, "faces": {side: len(evaluation.held[side].crops) for side in evaluation.held},
                **evaluation(decode)}

    return measure


def _finite(value):
    """JSON has no infinity or NaN: an identical background's PSNR is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.floating):
        return _finite(float(value))
    return value
