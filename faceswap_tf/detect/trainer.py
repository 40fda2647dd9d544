"""Training and measuring the detector, with the run management of the swapper's training.

One `tf.train.Checkpoint` (network, optimizer, step and the run's settings) managed by a
CheckpointManager; a run resumes from the newest readable checkpoint, refuses one of other
settings, never saves NaN weights (`trainer.save_checkpoint`), saves and stops on SIGINT or
SIGTERM. TensorBoard: `model_dir/train` (losses, images/s) and `model_dir/eval` (validation
AUC, the ROC curve, the most confidently wrong faces). At the end the threshold is chosen on
the validation faces (at most `max_false_positive` of their real faces flagged, in the middle
of the gap between those it passes and the swaps it catches: `scores.threshold_for`) and the test
faces (people never seen in training) are measured: `model_dir/report.json`. With
`identity_adversary` the checkpoint also holds the identity head and its optimizer (the people
it tells apart are part of the run's settings); the export leaves them out.
"""

import dataclasses
import json
import os
import sys
import time

import cv2
import numpy as np
import tensorflow as tf

from faceswap_tf import checkpoints, files, metrics, run_record
from faceswap_tf import trainer as gan_trainer
from faceswap_tf.detect import manifest as manifest_lib
from faceswap_tf.detect import samples as samples_lib
from faceswap_tf.detect import scores
from faceswap_tf.detect.model import DetectorModelConfig, build_detector, build_identity_head, members_of
from faceswap_tf.errors import UserError, brief
from faceswap_tf.framing import Framing
from faceswap_tf.progress import clock

RECORD_FORMAT = "faceswap_tf.detector_run"
REPORT = "report.json"


@dataclasses.dataclass(frozen=True)
class DetectConfig:
    data_dir: str
    model_dir: str
    test_identities: tuple[str, ...]
    model: DetectorModelConfig = dataclasses.field(default_factory=DetectorModelConfig)
    calibration_identities: tuple[str, ...] = ()  # real faces that join validation's in choosing the threshold
    augment: samples_lib.AugmentConfig = dataclasses.field(default_factory=samples_lib.AugmentConfig)
    validation: float = 0.25
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 3e-4
    mask_weight: float = 1.0  # 0 turns the mask head's loss off
    self_blend: float = 0.0  # share of the swapped half of each batch made by self-blending real faces
    reblend: float = 0.0  # share of the other fakes pasted into their real crop through part of the mask
    cross_blend: float = 0.0  # share of the swapped half made by blending another real face into a real one
    match_mouths: bool = False  # draw faces so that real and swapped ones show alike mouths (samples)
    identity_adversary: float = 0.0  # weight of the features' loss for telling the training people apart
    save_every: int = 250
    log_every: int = 50
    eval_every: int = 250
    keep_checkpoints: int = 3
    seed: int = 0
    track_frames: int = 30  # frames pooled into one video-level score
    max_false_positive: float = 0.01  # of the validation real faces, at the chosen threshold
    run_eagerly: bool = False

    def __post_init__(self):
        if not self.test_identities:
            raise UserError("--test_identities: name the people held out for testing")
        for name in ("steps", "batch_size", "save_every", "log_every", "keep_checkpoints", "track_frames"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name}={getattr(self, name)}: must be at least 1")
        if self.eval_every < 0:
            raise UserError(f"--eval_every={self.eval_every}: must be 0 (only at the end) or more")
        if not 0 < self.validation < 1:
            raise UserError(f"--validation={self.validation}: must be in (0, 1)")
        for name in ("self_blend", "reblend", "cross_blend"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"--{name}={getattr(self, name)}: must be in [0, 1]")
        if self.self_blend + self.cross_blend > 1:
            raise UserError(f"--self_blend={self.self_blend} and --cross_blend={self.cross_blend}: their sum "
                            "is the share of the swapped half they make, at most 1")
        if self.identity_adversary < 0:
            raise UserError(f"--identity_adversary={self.identity_adversary}: must be 0 (off) or more")
        if self.identity_adversary and self.model.members > 1:
            raise UserError(f"--identity_adversary={self.identity_adversary} with "
                            f"--members={self.model.members}: the identity head reads one network's features; "
                            "use one of the two")
        if not 0 <= self.max_false_positive < 1:
            raise UserError(f"--max_false_positive={self.max_false_positive}: must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class DetectorRecord:
    """`model_dir/config.json` of a detector run; `settings()` is what its checkpoints mean."""

    model: DetectorModelConfig
    framing: Framing
    test_identities: tuple[str, ...]
    validation: float
    data_dir: str
    calibration_identities: tuple[str, ...] = ()
    identity_adversary: tuple[str, ...] = ()  # the people its identity head tells apart, in its order; () off

    def settings(self) -> dict:
        model = dataclasses.asdict(self.model)
        for name, default in (("members", 1), ("view", "rgb")):  # as records written before they were
            if model[name] == default:
                del model[name]
        settings = {"model": model, "framing": self.framing.to_json(),
                    "test_identities": sorted(self.test_identities), "validation": self.validation,
                    "calibration_identities": sorted(self.calibration_identities)}
        if self.identity_adversary:  # a checkpoint that holds an identity head
            settings["identity_adversary"] = list(self.identity_adversary)
        return settings

    def to_json(self) -> dict:
        return {"format": RECORD_FORMAT, **self.settings(), "data_dir": self.data_dir}

    @classmethod
    def from_json(cls, document: dict, where: str) -> "DetectorRecord":
        try:
            return cls(model=DetectorModelConfig(**document["model"]),
                       framing=Framing.from_json(document["framing"], where),
                       test_identities=tuple(document["test_identities"]),
                       validation=float(document["validation"]),
                       data_dir=str(document["data_dir"]),
                       calibration_identities=tuple(document.get("calibration_identities", ())),
                       identity_adversary=tuple(document.get("identity_adversary", ())))
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{where}: malformed detector run record ({type(error).__name__}: {error})") \
                from None


def read_record(model_dir: str) -> dict:
    """A detector run's config.json as written; UserError if it is missing or another kind of run's."""
    path = run_record.path_of(model_dir)
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{model_dir}: no {run_record.FILE_NAME}; is it a faceswap_tf.detect --model_dir?") \
            from None
    except (OSError, ValueError, RecursionError) as error:
        raise UserError(f"{path}: unreadable ({brief(error)})") from None
    if not isinstance(document, dict) or document.get("format") != RECORD_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise UserError(f"{path}: not a detector run (format {found!r}): give the --model_dir of a "
                        "faceswap_tf.detect run, or a new folder")
    return document


def framing_of(found: manifest_lib.Manifest, model: DetectorModelConfig, where: str) -> Framing:
    crops = {job.framing for job in found.jobs.values()}
    if len(crops) != 1:
        raise UserError(f"{where}: crops of several framings ({len(crops)}); one detector sees one framing")
    return crops.pop().with_view(model.coverage, model.resolution)


class DetectorTrainer:
    def __init__(self, config: DetectConfig, record: DetectorRecord):
        self.config, self.record = config, record
        tf.keras.utils.set_random_seed(config.seed)
        self.model = build_detector(config.model)
        self.members = members_of(self.model)
        self.optimizer = gan_trainer.FusedAdam(config.learning_rate, name="optimizer")
        self.optimizer.build(self.model.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._tracked = dict(detector=self.model, optimizer=self.optimizer, step=self.step,
                             run_settings=run_record.settings_variable(record))
        self.identity_head = None
        if record.identity_adversary:
            features = self.model.get_layer("features").output.shape[-1]
            self.identity_head = build_identity_head(features, len(record.identity_adversary))
            self.identity_optimizer = gan_trainer.FusedAdam(config.learning_rate, name="identity_optimizer")
            self.identity_optimizer.build(self.identity_head.trainable_variables)
            self._tracked.update(identity_head=self.identity_head, identity_optimizer=self.identity_optimizer)
        self.checkpoint = tf.train.Checkpoint(**self._tracked)
        self.checkpoint_dir = config.model_dir
        self._manager = None
        # autograph=False, as the swapper's step (trainer.GanTrainer): nothing here to convert.
        self.train_step = (self._train_step if config.run_eagerly
                           else tf.function(self._train_step, autograph=False))
        self.predict = tf.function(self._predict, autograph=False)

    @property
    def manager(self) -> tf.train.CheckpointManager:
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self.checkpoint_dir, max_to_keep=self.config.keep_checkpoints,
                step_counter=self.step)
        return self._manager

    def weights_finite(self) -> bool:
        return gan_trainer.all_finite(list(self.model.variables) + list(self.optimizer.variables))

    def restore(self, log=sys.stderr) -> int:
        """As GanTrainer.restore: the newest readable, finite checkpoint of these settings."""
        model_dir = self.config.model_dir
        restored = None
        for path in checkpoints.readable(model_dir, log):
            run_record.check_matches_checkpoint(
                self.record.settings(), path, model_dir,
                "resume with the checkpoint's settings, or use another --model_dir")
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError) as error:
                raise UserError(f"{path}: does not hold this detector ({brief(error)}); use another "
                                "--model_dir") from None
            if self.weights_finite():
                restored = path
                break
            log.write(f"warning: {path}: holds NaN or Inf weights; trying the one before\n")
        if restored:
            checkpoints.write_index(model_dir, restored)
        else:
            checkpoints.drop_broken_index(model_dir)
        self._manager = None
        return int(self.step.numpy())

    def _train_step(self, images, labels, masks, identities=None):
        """One step; with an identity head (`identities` [N], indices into the record's
        `identity_adversary`), the head learns which training person a face's frame shows (its
        loss moves only the head's weights), and the detector's features are pushed towards
        leaving it no better than a uniform guess (the cross-entropy of its prediction against the
        uniform distribution, less log K, which is 0 at uniform; it moves only the detector's),
        weighted by `identity_adversary`: a domain-adversarial objective with the people as
        domains (Ganin et al., JMLR 2016). With several members the batch holds one batch for each
        in turn; each learns from its own alone (the loss is the sum of theirs; the figures
        logged, their means)."""
        count = len(self.members)
        chunks = [tf.split(t, count) for t in (images, labels, masks)]
        with tf.GradientTape(persistent=self.identity_head is not None) as tape:
            classifier, mask_loss = [], []
            for member, x, y, m in zip(self.members, *chunks, strict=True):
                out = member(x, training=True)
                classifier.append(tf.reduce_mean(
                    tf.nn.sigmoid_cross_entropy_with_logits(y[:, None], out["logit"])))
                if "mask" in out and self.config.mask_weight:
                    target = tf.image.resize(m, tf.shape(out["mask"])[1:3], method="area")
                    mask_loss.append(tf.reduce_mean(
                        tf.nn.sigmoid_cross_entropy_with_logits(target, out["mask"])))
            loss = tf.add_n(classifier)
            values = {"loss/classifier": loss / count}
            if mask_loss:
                values["loss/mask"] = tf.add_n(mask_loss) / count
                loss += self.config.mask_weight * tf.add_n(mask_loss)
            if self.identity_head is not None:
                # `out` is the one member's: the adversary needs members=1 (DetectConfig).
                head_logits = self.identity_head(out["features"], training=True)
                head_loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(identities, head_logits))
                log_p = tf.nn.log_softmax(head_logits)
                people = tf.cast(tf.shape(log_p)[-1], tf.float32)
                blind = -tf.reduce_mean(tf.reduce_mean(log_p, axis=-1)) - tf.math.log(people)
                values["loss/identity_head"] = head_loss
                values["loss/identity_blind"] = blind
                loss += self.config.identity_adversary * blind
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        if self.identity_head is not None:
            head_grads = tape.gradient(head_loss, self.identity_head.trainable_variables)
            self.identity_optimizer.apply(head_grads, self.identity_head.trainable_variables)
            del tape
        self.step.assign_add(1)
        values["loss/total"] = loss / count
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values.values()])
        return values, finite

    def _predict(self, images, member=None):
        network = self.model if member is None else self.members[member]
        return tf.sigmoid(network(images, training=False)["logit"][:, 0])

    def probabilities(self, images: np.ndarray, batch: int = 64, member: int | None = None) -> np.ndarray:
        """uint8 [N, R, R, 3] views -> fake probabilities [N]: the detector's, or one member's."""
        out = [self.predict(tf.constant(images[i:i + batch], tf.float32) / 255.0, member).numpy()
               for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros([0], np.float32)


@dataclasses.dataclass
class _Part:
    samples: list
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def run(config: DetectConfig, log=sys.stderr, replay_flags: str | None = None) -> dict:
    """Trains until config.steps (resuming), then measures; returns the report."""
    files.check_folder(config.model_dir, "--model_dir")
    if os.path.exists(run_record.path_of(config.model_dir)):
        read_record(config.model_dir)  # a swapper's run (or anything else) is not written over
    found = manifest_lib.read(config.data_dir)
    framing = framing_of(found, config.model, manifest_lib.path_of(config.data_dir))
    parts = samples_lib.split(samples_lib.samples_of(config.data_dir, found), frozenset(config.test_identities),
                              config.validation, frozenset(config.calibration_identities))
    people = ()
    if config.identity_adversary:
        people = tuple(samples_lib.identity_indices(parts.train)[1])
        if len(people) < 2:
            raise UserError(f"--identity_adversary={config.identity_adversary}: the training faces are of "
                            f"{len(people)} person ({', '.join(people)}); it needs at least two to tell apart")
    record = DetectorRecord(config.model, framing, tuple(sorted(config.test_identities)), config.validation,
                            os.path.abspath(config.data_dir), tuple(sorted(config.calibration_identities)),
                            people)
    if config.match_mouths and any(sample.mouth is None for sample in parts.train):
        raise UserError(f"--match_mouths: {manifest_lib.path_of(config.data_dir)} lacks the landmarks of some "
                        "faces (the swapped faces' are kept since 2026-11-30); build the dataset again")
    named = {field.name: getattr(parts, field.name) for field in dataclasses.fields(parts)}
    loaded = {name: _Part(part, *samples_lib.load(part, framing)) for name, part in named.items()}
    files.make_folder(config.model_dir, "--model_dir")
    trainer = DetectorTrainer(config, record)
    start = trainer.restore(log)
    left = checkpoints.sweep_temporary(config.model_dir)
    if left:
        log.write(f"note: {config.model_dir}: removed {', '.join(left)}, left by a save that did not finish\n")
    files.write_atomic(run_record.path_of(config.model_dir), json.dumps(record.to_json(), indent=1) + "\n")
    if replay_flags is not None:
        files.write_atomic(os.path.join(config.model_dir, "flags.txt"), replay_flags)
    log.write(f"detector from step {start} to {config.steps}: {len(parts.train)} training faces, "
              f"{len(parts.validation)} validation, {len(parts.test)} test (people never trained on: "
              f"{', '.join(record.test_identities)})\n")
    if start < config.steps:
        _train(trainer, loaded, start, log)
    else:
        log.write(f"{config.model_dir}: already at step {start} of {config.steps}\n")
    report = measure(trainer, loaded, config)
    files.write_atomic(os.path.join(config.model_dir, REPORT), json.dumps(report, indent=1) + "\n")
    for line in report_lines(report):
        log.write(line + "\n")
    return report


def _train(trainer: DetectorTrainer, loaded: dict, start: int, log) -> None:
    config = trainer.config
    train = loaded["train"]
    pairs = None
    if config.reblend:
        where = {sample.path: i for i, sample in enumerate(train.samples)}
        pairs = np.array([where.get(sample.pair, -1) for sample in train.samples], np.int64)
    mouths = [sample.mouth for sample in train.samples]
    weights = samples_lib.mouth_matching(mouths, train.labels) if config.match_mouths else None
    if all(m is not None for m in mouths):
        log.write(f"mouth opening against the label in the training faces: correlation "
                  f"{samples_lib.label_mouth_correlation(mouths, train.labels):+.2f}"
                  + (f", {samples_lib.label_mouth_correlation(mouths, train.labels, weights):+.2f} as drawn "
                     "(--match_mouths)" if weights is not None else "") + "\n")
    identities = samples_lib.identity_indices(train.samples)[0] if trainer.identity_head is not None else None
    stream = iter(samples_lib.dataset(train.images, train.labels, train.masks,
                                      config.batch_size * len(trainer.members),
                                      config.augment, config.seed, start, config.self_blend,
                                      samples_lib.template_mask(trainer.record.framing)
                                      if config.self_blend or config.cross_blend else None,
                                      config.reblend, pairs, weights, config.cross_blend, identities))
    writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "train"))
    evaluation = tf.summary.create_file_writer(os.path.join(config.model_dir, "eval"))
    step, images, window = start, 0, time.perf_counter()
    began = window
    with writer.as_default(), gan_trainer.StopSignal() as stop:
        while step < config.steps:
            values, finite = trainer.train_step(*next(stream))
            step += 1
            images += config.batch_size * len(trainer.members)
            last = step == config.steps
            if not bool(finite):
                raise gan_trainer.TrainingDiverged(
                    f"{config.model_dir}: a loss became NaN or Inf at step {step}; the last good checkpoint "
                    "is kept: lower --learning_rate")
            if step % config.log_every == 0 or last:
                now = time.perf_counter()
                rate = images / (now - window)
                for name, value in values.items():
                    tf.summary.scalar(name, float(value), step=step)
                tf.summary.scalar("images_per_second", rate, step=step)
                eta = (config.steps - step) * (now - began) / (step - start)
                people = len(trainer.record.identity_adversary)
                who = (f"  identity head {float(values['loss/identity_head']):.3f} "
                       f"(guessing: {np.log(people):.3f})" if people else "")
                log.write(f"step {step}/{config.steps}  loss {float(values['loss/total']):.4f}{who}  "
                          f"{rate:.1f} img/s  ETA {clock(eta)}\n")
                window, images = now, 0
            if config.eval_every and (step % config.eval_every == 0 or last):
                _write_eval(trainer, loaded["validation"], evaluation, step)
            if step % config.save_every == 0 or last or stop.requested:
                gan_trainer.save_checkpoint(trainer, step)
            if stop.requested:
                log.write(f"stopped by signal at step {step}; checkpoint saved\n")
                break
    writer.flush()


def _write_eval(trainer: DetectorTrainer, part: _Part, writer, step: int) -> None:
    """Validation AUC, the ROC curve and the most confidently wrong faces (also preview.png)."""
    probabilities = trainer.probabilities(part.images)
    wrong = np.argsort(-np.abs(probabilities - part.labels))[:8]
    grid = np.concatenate([_labelled(part.images[i], part.labels[i], probabilities[i]) for i in wrong], axis=1)
    with writer.as_default():
        tf.summary.scalar("validation/frame_auc", scores.auc(probabilities, part.labels), step=step)
        tf.summary.image("validation/roc", scores.roc_image(probabilities, part.labels)[None], step=step)
        tf.summary.image("validation/most_confidently_wrong", grid[None], step=step)
    writer.flush()
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    files.write_atomic(os.path.join(trainer.config.model_dir, "preview.png"), png.tobytes())


def _labelled(image: np.ndarray, label: float, probability: float) -> np.ndarray:
    image = cv2.resize(image, (128, 128), interpolation=cv2.INTER_LINEAR).copy()
    text = f"{'FAKE' if label else 'real'} p={probability:.2f}"
    cv2.rectangle(image, (0, 0), (128, 14), (0, 0, 0), -1)
    cv2.putText(image, text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def measure(trainer: DetectorTrainer, loaded: dict, config: DetectConfig) -> dict:
    """The threshold from validation, then every group of test faces: uncompressed swaps of
    unseen pairs, the same per CRF, and the real faces alone (false positives). An ensemble's
    members are each measured alike (`members`: their own thresholds and groups), so a report
    shows what the mean gives over its members."""
    report = {"step": int(trainer.step.numpy()), "test_identities": list(config.test_identities),
              **_measured(trainer.probabilities, loaded, config)}
    if len(trainer.members) > 1:
        report["members"] = [
            _measured(lambda images, i=i: trainer.probabilities(images, member=i), loaded, config)
            for i in range(len(trainer.members))]
    return report


def _measured(score, loaded: dict, config: DetectConfig) -> dict:
    """{"threshold", "groups"} of one scoring function (uint8 views -> probabilities)."""
    validation, calibration = loaded["validation"], loaded["calibration"]
    val_scores = score(validation.images)
    calibration_scores = score(calibration.images)
    threshold = scores.threshold_for(np.concatenate([val_scores[validation.labels == 0], calibration_scores]),
                                     config.max_false_positive, val_scores[validation.labels == 1])
    groups = {"validation": (validation, val_scores)}
    if len(calibration.samples):
        groups["calibration_reals"] = (calibration, calibration_scores)
    test = loaded["test"]
    test_scores = score(test.images)
    crfs = sorted({s.crf for s in test.samples if s.crf is not None})
    measured = {"threshold": threshold, "groups": {}}
    for name, wanted in [("unseen_pairs", None)] + [(f"unseen_pairs_crf{crf}", crf) for crf in crfs]:
        pick = np.array([s.crf == wanted for s in test.samples])
        groups[name] = (_Part([s for s, p in zip(test.samples, pick, strict=True) if p], test.images[pick],
                              test.labels[pick], test.masks[pick]), test_scores[pick])
    for name, (part, probabilities) in groups.items():
        tracks = [(*s.track, s.frame // config.track_frames) for s in part.samples]
        measured["groups"][name] = scores.summary(probabilities, part.labels, tracks, threshold)
        measured["groups"][name]["real_score_vs_mouth"] = _mouth_shortcut(part, probabilities)
    return measured


def _mouth_shortcut(part: _Part, probabilities: np.ndarray) -> float | None:
    """Correlation of the real faces' scores with how far their mouths are open (None without
    landmarks or with too few faces). Near 0 for a detector of what a swap does; strongly
    negative for one that learnt that a closed mouth means a swap, as it does from a swapper
    whose mouths open less than the person's (samples.reblended)."""
    pick = [i for i, s in enumerate(part.samples) if s.label == 0 and s.mouth is not None]
    if len(pick) < 10:
        return None
    correlation = metrics.following([part.samples[i].mouth for i in pick], probabilities[pick])["correlation"]
    return None if correlation != correlation else correlation  # NaN: the mouths never move


def report_lines(report: dict) -> list[str]:
    lines = [f"threshold {report['threshold']:.4f} (chosen on validation); test people: "
             f"{', '.join(report['test_identities'])}",
             f"{'group':<22} {'faces':>6} {'frame AUC':>9} {'EER':>6} {'acc':>6} {'FP real':>8} "
             f"{'video AUC':>9} {'real~mouth':>10}"]
    for name, g in report["groups"].items():
        lines.append(f"{name:<22} {g['faces']:>6} {_figure(g['frame_auc']):>9} {_figure(g['eer']):>6} "
                     f"{_figure(g['accuracy']):>6} {_figure(g['false_positive_rate']):>8} "
                     f"{_figure(g['video_auc']):>9} {_figure(g.get('real_score_vs_mouth'), '+.2f'):>10}")
    for i, member in enumerate(report.get("members", ())):
        g = member["groups"]
        lines.append(f"member {i} alone: threshold {member['threshold']:.4f}; " + "; ".join(
            f"{name} AUC {_figure(g[name]['frame_auc'])}, "
            f"real flagged {_figure(g[name]['false_positive_rate'])}"
            for name in ("unseen_pairs", "unseen_pairs_crf35") if name in g))
    return lines


def _figure(value, spec=".3f") -> str:
    return "-" if value is None or value != value else format(value, spec)
