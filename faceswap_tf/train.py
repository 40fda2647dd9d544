"""Train the faceswap-GAN on two folders of aligned faces.

  python -m faceswap_tf.train --flagfile=flags/demo.flags --model_dir=runs/demo/model

Resumes from the newest checkpoint in --model_dir. The resolved flags are written to
model_dir/flags.txt, so `--flagfile=model_dir/flags.txt` replays the run.
"""

from absl import flags

from faceswap_tf import app, data, losses, models, runtime, trainer
from faceswap_tf.errors import UserError

_FACES_A = flags.DEFINE_string("faces_a", None, "Extract output folder of person A.", required=True)
_FACES_B = flags.DEFINE_string("faces_b", None, "Extract output folder of person B.", required=True)
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoints, flags.txt, TensorBoard.", required=True)
_STEPS = flags.DEFINE_integer("steps", 20_000, "Train until this step.")
_INIT_FROM = flags.DEFINE_string(
    "init_from", None, "Another run's --model_dir (a base pretrained on many faces: flags/pretrain.flags): "
    "a new run starts from its networks instead of random ones. Ignored when resuming.")
_INIT_PARTS = flags.DEFINE_enum(
    "init_parts", "generator", list(trainer.INIT_PARTS),
    "What --init_from gives: the encoder, the generator (encoder and decoders), or all.")
_MAX_MINUTES = flags.DEFINE_float(
    "max_minutes", None, "Also stop, saving a checkpoint, after this many minutes of training in this run "
    "(held-out evaluation not counted): to compare recipes at equal time, or to fit a budget.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Faces per person per step, split across replicas.")
_RESOLUTION = flags.DEFINE_enum("resolution", "64", [str(r) for r in models.RESOLUTIONS], "Model size in px.")
_CORE_RESOLUTION = flags.DEFINE_enum(
    "core_resolution", None, [str(r) for r in (32,) + models.RESOLUTIONS],
    "Side of the network's inner layers (default: --resolution). Half of --resolution: the face goes in "
    "and comes out at --resolution, folded into half the side by the first layer and drawn at full size "
    "by the last (DeepFaceLab's -d), at about the cost of the half-size network.")
_WIDTH = flags.DEFINE_float("width", 1.0, "Multiplier of every layer's filters.")
_CODE_SIZE = flags.DEFINE_integer("code_size", 1024, "Units of the encoder's dense bottleneck.")
_SELF_ATTENTION = flags.DEFINE_boolean("self_attention", True, "SAGAN self-attention blocks.")
_SPECTRAL_NORM = flags.DEFINE_boolean("spectral_norm", True, "Spectral normalisation in D.")
_COVERAGE = flags.DEFINE_float("coverage", 0.85, "Centre part of the aligned crop the model sees.")
_HOLDOUT = flags.DEFINE_float("holdout", 0.2, "Last part of each source's frames kept out of training.")
_WARP = flags.DEFINE_float("warp", 0.02, "Random warp strength, of the image size.")
_BALANCE = flags.DEFINE_float(
    "balance", 0.0, "Draw rare expressions and poses (wide mouth, closed eyes, a turned head) more often: 0, "
    "every face alike; 1, every kind of face as often (see faceswap_tf.coverage).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of batches and augmentation.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate of G.")
_D_LEARNING_RATE = flags.DEFINE_float("d_learning_rate", 1e-4, "Adam learning rate of D.")
_LR_DECAY = flags.DEFINE_enum(
    "lr_decay", "none", list(trainer.LR_DECAYS), "Both learning rates fall to 0 by the end of the run "
    "(--steps, or --max_minutes when that comes first): in a straight line, or a half cosine.")
_LR_DECAY_START = flags.DEFINE_float(
    "lr_decay_start", 0.0, "Fraction of the run before --lr_decay starts (0: from the first step).")
_ADVERSARIAL = flags.DEFINE_enum("adversarial", "lsgan", list(losses.ADVERSARIAL), "Adversarial loss.")
_ADVERSARIAL_WEIGHT = flags.DEFINE_float("adversarial_weight", 0.1, "Weight of the G adversarial term.")
_ADVERSARIAL_WARMUP = flags.DEFINE_integer("adversarial_warmup", 0, "Steps before the adversarial term.")
_RAW_RGB_WEIGHT = flags.DEFINE_float("raw_rgb_weight", 1.0, "L1 on raw decoder RGB (stops mask collapse).")
_EYES_MOUTH_WEIGHT = flags.DEFINE_float("eyes_mouth_weight", 3.0, "L1 weight in eye and mouth regions.")
_SSIM_WEIGHT = flags.DEFINE_float("ssim_weight", 0.0, "Weight of the SSIM loss.")
_EDGE_WEIGHT = flags.DEFINE_float("edge_weight", 0.0, "Weight of the edge loss.")
_MASK_L1_WEIGHT = flags.DEFINE_float("mask_l1_weight", 0.01, "Weight of the mask's L1 penalty.")
_MASK_TV_WEIGHT = flags.DEFINE_float("mask_tv_weight", 0.1, "Weight of the mask's total variation.")
_MASK_HULL_WEIGHT = flags.DEFINE_float(
    "mask_hull_weight", 0.5, "Weight of L1 between the mask and the landmarks' face hull."
)
_CODE_ADVERSARIAL_WEIGHT = flags.DEFINE_float(
    "code_adversarial_weight", 0.0, "Weight of the code term (after DeepFaceLab's true face, symmetric, least "
    "squares): a discriminator on the encoder's codes learns to tell A's from B's (at --d_learning_rate), and "
    "the encoder to give both people codes it cannot tell apart, so a swap feeds B's decoder codes like the "
    "ones it was trained on. 0: off; a run resumes only with it on or off as it started.")
_EXPRESSION_WEIGHT = flags.DEFINE_float(
    "expression_weight", 0.0, "Weight of the expression term: a small regressor learns, from both people's "
    "faces and their landmarks, how open the mouth and eyes are and where the head turns (at "
    "--d_learning_rate); each swap the step makes is pulled to the measures of the face it was made from. "
    "It costs a decoder pass on the other person's codes. 0: off; a run resumes only with it on or off as "
    "it started.")
_EXPRESSION_WARMUP = flags.DEFINE_integer(
    "expression_warmup", 500, "Steps the expression regressor learns alone before its term reaches the swaps.")
_XLA = flags.DEFINE_enum("xla", "auto", list(runtime.XLA_CHOICES), "XLA; auto: on with a GPU, off on CPU.")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "auto", list(runtime.PRECISIONS),
    "auto: bfloat16 on CPUs with AVX512_BF16/AMX and GPUs from Ampere, float16 on older GPUs.",
)
_RUN_EAGERLY = flags.DEFINE_boolean("run_eagerly", False, "No tf.function, for debugging.")
_SAVE_EVERY = flags.DEFINE_integer("save_every", 500, "Steps between checkpoints.")
_KEEP_CHECKPOINTS = flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Steps between progress lines and scalars.")
_PREVIEW_EVERY = flags.DEFINE_integer("preview_every", 250, "Steps between previews.")
_EVAL_EVERY = flags.DEFINE_integer(
    "eval_every", 500, "Steps between held-out identity and reconstruction metrics "
    "(TensorBoard under model_dir/eval); 0: never.")
_PROFILE_STEPS = flags.DEFINE_string(
    "profile_steps", "", "FIRST,LAST: a TensorBoard profile of these steps under model_dir/train "
    "(the Profile tab, with tensorboard-plugin-profile installed); empty: none.")


def _profile_steps() -> tuple[int, int] | None:
    if not _PROFILE_STEPS.value:
        return None
    try:
        first, last = (int(part) for part in _PROFILE_STEPS.value.split(","))
    except ValueError:
        first = last = 0
    if not 1 <= first <= last:
        raise UserError(f"--profile_steps={_PROFILE_STEPS.value}: give FIRST,LAST with 1 <= FIRST <= LAST")
    return first, last
_WORKER_TIMEOUT = flags.DEFINE_float(
    "worker_timeout", 30.0, "With several machines (TF_CONFIG): seconds without a sign of life after which "
    "a worker counts as gone; the others then stop with an error instead of waiting for it forever.")


def config_from_flags() -> trainer.TrainConfig:
    resolution = int(_RESOLUTION.value)
    return trainer.TrainConfig(
        model_dir=_MODEL_DIR.value,
        data=data.DataConfig(
            faces_a=_FACES_A.value, faces_b=_FACES_B.value, resolution=resolution,
            coverage=_COVERAGE.value, batch_size=_BATCH_SIZE.value, holdout=_HOLDOUT.value,
            warp=_WARP.value, balance=_BALANCE.value, seed=_SEED.value,
        ),
        model=models.ModelConfig(
            resolution=resolution, width=_WIDTH.value, code_size=_CODE_SIZE.value,
            core_resolution=int(_CORE_RESOLUTION.value) if _CORE_RESOLUTION.value else None,
            self_attention=_SELF_ATTENTION.value, spectral_norm=_SPECTRAL_NORM.value,
        ),
        loss=trainer.LossConfig(
            adversarial=_ADVERSARIAL.value, adversarial_weight=_ADVERSARIAL_WEIGHT.value,
            adversarial_warmup=_ADVERSARIAL_WARMUP.value, raw_rgb_weight=_RAW_RGB_WEIGHT.value,
            eyes_mouth_weight=_EYES_MOUTH_WEIGHT.value, ssim_weight=_SSIM_WEIGHT.value,
            edge_weight=_EDGE_WEIGHT.value, mask_l1_weight=_MASK_L1_WEIGHT.value,
            mask_tv_weight=_MASK_TV_WEIGHT.value, mask_hull_weight=_MASK_HULL_WEIGHT.value,
            code_adversarial_weight=_CODE_ADVERSARIAL_WEIGHT.value,
            expression_weight=_EXPRESSION_WEIGHT.value, expression_warmup=_EXPRESSION_WARMUP.value,
        ),
        steps=_STEPS.value, learning_rate=_LEARNING_RATE.value,
        d_learning_rate=_D_LEARNING_RATE.value, lr_decay=_LR_DECAY.value,
        lr_decay_start=_LR_DECAY_START.value, xla=_XLA.value,
        mixed_precision=_MIXED_PRECISION.value, run_eagerly=_RUN_EAGERLY.value,
        save_every=_SAVE_EVERY.value, keep_checkpoints=_KEEP_CHECKPOINTS.value,
        log_every=_LOG_EVERY.value, preview_every=_PREVIEW_EVERY.value, eval_every=_EVAL_EVERY.value,
        max_minutes=_MAX_MINUTES.value, init_from=_INIT_FROM.value, init_parts=_INIT_PARTS.value,
        profile_steps=_profile_steps(),
        worker_timeout=_WORKER_TIMEOUT.value,
    )


def main(argv):
    del argv
    config = config_from_flags()
    trainer.run(config, replay_flags=flags.FLAGS.flags_into_string())


def run():
    """Console entry point `faceswap-train`."""
    app.run(main)


if __name__ == "__main__":
    run()
