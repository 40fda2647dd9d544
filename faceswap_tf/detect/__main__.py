"""Train and measure the deepfake detector on a dataset of labelled fakes.

  python -m faceswap_tf.detect --flagfile=flags/detect.flags --data_dir=runs/detect/data \
      --model_dir=runs/detect/model --test_identities=extra_man_hoodie,extra_man_glasses

Resumes from the newest checkpoint in --model_dir; writes model_dir/report.json (frame AUC,
EER, accuracy and false positives at the threshold chosen on validation, video AUC; for the
people never trained on, uncompressed and per CRF) and model_dir/flags.txt.
"""

from absl import flags

from faceswap_tf import app
from faceswap_tf.detect import samples, trainer
from faceswap_tf.detect.model import VIEWS, DetectorModelConfig

_DATA_DIR = flags.DEFINE_string("data_dir", None, "The dataset (faceswap_tf.detect.dataset's --output_dir).",
                                required=True)
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoints, flags.txt, report.json, TensorBoard.",
                                 required=True)
_TEST_IDENTITIES = flags.DEFINE_list(
    "test_identities", [], "People held out: their swaps and real faces are the test set, and nothing with "
    "them in it is trained on. Names are video stems (identity_a, extra_man_hoodie).")
_CALIBRATION_IDENTITIES = flags.DEFINE_list(
    "calibration_identities", [], "People kept out of training whose real faces join the validation real "
    "faces in choosing the threshold (with --max_false_positive), so that it is set on strangers too.")
_VALIDATION = flags.DEFINE_float("validation", 0.25,
                                 "Last part of each training job's frames kept for validation.")
_STEPS = flags.DEFINE_integer("steps", 2000, "Train until this step.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Faces per step, half real, half swapped.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 3e-4, "Adam learning rate.")
_RESOLUTION = flags.DEFINE_integer("resolution", 128, "The detector's view of the crop, in pixels.")
_COVERAGE = flags.DEFINE_float("coverage", 1.0, "Centre part of the aligned crop the detector sees.")
_WIDTH = flags.DEFINE_integer("width", 32, "Filters of the first block (doubled per block).")
_BLOCKS = flags.DEFINE_integer("blocks", 4, "Convolution blocks, each halving the side.")
_MASK_HEAD = flags.DEFINE_boolean("mask_head", True, "A second head predicting the blend mask.")
_MEMBERS = flags.DEFINE_integer(
    "members", 1, "Networks trained side by side, each on batches of its own from its own initial weights; the "
    "detector scores a face with the mean of their logits (an ensemble). Each costs one network's training.")
_VIEW = flags.DEFINE_enum(
    "view", "rgb", list(VIEWS), "What the network's first layer reads: the view's colours, or its "
    "detail alone (the view less its blur), without the shapes and colours that tell who a person is.")
_MASK_WEIGHT = flags.DEFINE_float("mask_weight", 1.0, "Weight of the mask head's loss.")
_JPEG = flags.DEFINE_float("jpeg", 0.5, "Probability of a JPEG recompression (quality 30-95) per face.")
_BLUR = flags.DEFINE_float("blur", 0.3, "Probability of a Gaussian blur per face.")
_RESIZE = flags.DEFINE_float("resize", 0.3, "Probability of a downscale and upscale per face.")
_COLOUR = flags.DEFINE_float("colour", 0.8, "Probability of colour jitter per face.")
_OCCLUDE = flags.DEFINE_float(
    "occlude", 0.0, "Probability per face of thin sharp strokes drawn over it (a spectacle frame, an ellipse's "
    "outline, a straight line), real and swapped faces alike, so that a sharp line across a face is not taken "
    "for a blend's seam.")
_SELF_BLEND = flags.DEFINE_float(
    "self_blend", 0.0, "Share of the swapped faces in each batch made from real ones instead: an altered copy "
    "of the face blended back into it inside a deformed, feathered face hull (self-blended images).")
_REBLEND = flags.DEFINE_float(
    "reblend", 0.0, "Share of the (other) swapped faces in each batch pasted back into their real crop through "
    "the part of their mask on one side of a random line across the face, so that some fakes keep the real "
    "mouth or eyes (samples.reblended).")
_CROSS_BLEND = flags.DEFINE_float(
    "cross_blend", 0.0, "Share of the swapped faces in each batch made by blending another real face (another "
    "frame, usually another person), its colour matched, into a real one inside a deformed, feathered face "
    "hull: a swap without a generator, whose inner face is a real person's (samples.self_blended).")
_MATCH_MOUTHS = flags.DEFINE_boolean(
    "match_mouths", False, "Draw training faces so that the real and the swapped ones show the same "
    "distribution of mouth openings (each crop's own landmarks), so a closed mouth does not mean a swap; "
    "needs a dataset built with the swapped faces' landmarks (samples.mouth_matching).")
_IDENTITY_ADVERSARY = flags.DEFINE_float(
    "identity_adversary", 0.0, "Weight of a loss that trains the detector's features not to tell the training "
    "people apart (a head learns who each frame shows; the features are pushed to leave it guessing), so "
    "that a stranger's real faces are not scored by whom he resembles; 0 turns it off.")
_SAVE_EVERY = flags.DEFINE_integer("save_every", 250, "Checkpoint every N steps.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Log and write TensorBoard scalars every N steps.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 250, "Validation AUC, ROC and worst faces every N steps.")
_TRACK_FRAMES = flags.DEFINE_integer("track_frames", 30,
                                     "Consecutive frames pooled into one video-level score.")
_MAX_FALSE_POSITIVE = flags.DEFINE_float(
    "max_false_positive", 0.01, "The threshold flags at most this share of the validation real faces.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the initial weights, batches and augmentation.")
_RUN_EAGERLY = flags.DEFINE_boolean("run_eagerly", False, "Run the step eagerly (debugging).")


def config_from_flags() -> trainer.DetectConfig:
    return trainer.DetectConfig(
        data_dir=_DATA_DIR.value, model_dir=_MODEL_DIR.value, test_identities=tuple(_TEST_IDENTITIES.value),
        calibration_identities=tuple(_CALIBRATION_IDENTITIES.value),
        model=DetectorModelConfig(resolution=_RESOLUTION.value, coverage=_COVERAGE.value, width=_WIDTH.value,
                                  blocks=_BLOCKS.value, mask_head=_MASK_HEAD.value,
                                  members=_MEMBERS.value, view=_VIEW.value),
        augment=samples.AugmentConfig(jpeg=_JPEG.value, blur=_BLUR.value, resize=_RESIZE.value,
                                      colour=_COLOUR.value, occlude=_OCCLUDE.value),
        validation=_VALIDATION.value, steps=_STEPS.value, batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value, mask_weight=_MASK_WEIGHT.value, self_blend=_SELF_BLEND.value,
        reblend=_REBLEND.value, cross_blend=_CROSS_BLEND.value, match_mouths=_MATCH_MOUTHS.value,
        identity_adversary=_IDENTITY_ADVERSARY.value,
        save_every=_SAVE_EVERY.value, log_every=_LOG_EVERY.value, eval_every=_EVAL_EVERY.value,
        seed=_SEED.value,
        track_frames=_TRACK_FRAMES.value, max_false_positive=_MAX_FALSE_POSITIVE.value,
        run_eagerly=_RUN_EAGERLY.value)


def main(argv):
    del argv
    trainer.run(config_from_flags(), replay_flags=flags.FLAGS.flags_into_string())


def run():
    """Console entry point `faceswap-detect`."""
    app.run(main)


if __name__ == "__main__":
    run()
