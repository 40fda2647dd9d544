"""GanTrainer: the faceswap-GAN training step, checkpoints, summaries and previews.

One step trains both people: the encoder and both decoders (`_g_step`), then the
discriminators (`_d_step`) on the composites G made, with --code_adversarial_weight the
code discriminator (`_c_step`) on the codes G made, and with --expression_weight the
expression regressor (`_e_step`) on the real faces, whose reading of the swaps G made (each
decoder also drawing the other person's codes) is G's expression term; each has its own tape,
variable list and optimizer. The step runs under a tf.distribute strategy (`resolve_strategy`): each
replica takes its share of the global batch and the gradients are summed across replicas,
so N replicas compute the step one device would. The reconstruction of person
X is the composite `mask * rgb + (1 - mask) * warped` of X's decoder on the warped input;
the raw decoder RGB gets an L1 term of its own, because with the composite alone the mask
collapses to 0 within about 100 steps (the output is then the input and nothing is learnt).
Even so, the L1 penalty keeps the learnt mask small for the first thousands of steps, so it
is also pulled towards the face hull drawn from the landmarks, and at the eyes and mouth no
loss on the composite reaches the mask (`losses.composite`'s `drawn`): those the decoder must
draw, never copy from the input.
"""

import dataclasses
import io
import logging
import os
import re
import shutil
import signal
import sys
import time

import cv2
import keras
import numpy as np
import tensorflow as tf

from faceswap_tf import checkpoints, data, files, losses, metrics, models, run_record, runtime
from faceswap_tf.errors import UserError, WorkerLost, brief
from faceswap_tf.progress import clock

SIDES = ("a", "b")
INIT_PARTS = ("encoder", "generator", "all")
LR_DECAYS = ("none", "linear", "cosine")


def learning_rate_factor(decay: str, start: float, progress: float) -> float:
    """The learning rates' multiplier at `progress` (0 to 1) through the run: 1 until `start`,
    then down to 0 at the end, in a straight line or a half cosine. A run with a fixed budget
    ends on weights the last, small steps have settled instead of wherever the noise of full-size
    steps left them (budget-aware decay: Li, Yumer and Ramanan, "Budgeted Training", ICLR 2020)."""
    if decay == "none" or progress <= start:
        return 1.0
    left = max(0.0, 1.0 - (min(progress, 1.0) - start) / (1.0 - start))
    return left if decay == "linear" else 0.5 * (1.0 - np.cos(np.pi * left))


@dataclasses.dataclass(frozen=True)
class LossConfig:
    adversarial: str = "lsgan"
    adversarial_weight: float = 0.1
    adversarial_warmup: int = 0  # steps without the adversarial term
    raw_rgb_weight: float = 1.0  # L1 on the decoder's RGB: keeps the mask from collapsing
    eyes_mouth_weight: float = 3.0  # L1 weight inside the eye and mouth regions (1 elsewhere)
    ssim_weight: float = 0.0
    edge_weight: float = 0.0
    mask_l1_weight: float = 0.01
    mask_tv_weight: float = 0.1
    mask_hull_weight: float = 0.5  # L1 between the mask and the landmarks' face hull
    code_adversarial_weight: float = 0.0  # >0: a code discriminator makes A's and B's codes alike
    expression_weight: float = 0.0  # >0: swaps must show their source's expression and pose
    expression_warmup: int = 500  # steps the expression regressor learns before its term starts

    def __post_init__(self):
        if self.adversarial not in losses.ADVERSARIAL:
            raise UserError(f"--adversarial={self.adversarial}: choose one of {', '.join(losses.ADVERSARIAL)}")
        for name in ("code_adversarial_weight", "expression_weight", "expression_warmup"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name}={getattr(self, name)}: must be 0 or more")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model_dir: str
    data: data.DataConfig
    model: models.ModelConfig = dataclasses.field(default_factory=models.ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    steps: int = 1000
    learning_rate: float = 1e-4
    d_learning_rate: float = 1e-4
    lr_decay: str = "none"  # LR_DECAYS: both learning rates fall to 0 by the run's end
    lr_decay_start: float = 0.0  # fraction of the run (of --steps, or of --max_minutes) before it
    xla: str = "auto"  # auto: on where there is a GPU; on CPUs it measured slower
    mixed_precision: str = "auto"  # auto: bfloat16 where the processor has it, else float32
    run_eagerly: bool = False
    save_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    preview_every: int = 250
    eval_every: int = 500  # held-out identity and reconstruction metrics; 0: never
    max_minutes: float | None = None  # stop (saving a checkpoint) after this much training time
    init_from: str | None = None  # another run's model_dir: a fresh run starts from its networks
    init_parts: str = "generator"  # encoder, generator (+ decoders) or all (+ discriminators)
    profile_steps: tuple[int, int] | None = None  # (first, last): a TensorBoard profile of them
    worker_timeout: float = 30.0  # seconds of silence after which a cluster's worker counts as gone

    def __post_init__(self):
        runtime.check_choices(self.mixed_precision, self.xla)
        for name in ("steps", "save_every", "log_every", "preview_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name}={getattr(self, name)}: must be at least 1")
        if self.eval_every < 0:
            raise UserError(f"--eval_every={self.eval_every}: must be 0 (never) or more")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise UserError(f"--max_minutes={self.max_minutes}: must be more than 0")
        if self.lr_decay not in LR_DECAYS:
            raise UserError(f"--lr_decay={self.lr_decay}: choose {', '.join(LR_DECAYS)}")
        if not 0.0 <= self.lr_decay_start < 1.0:
            raise UserError(f"--lr_decay_start={self.lr_decay_start}: must be at least 0 and under 1")
        if self.init_parts not in INIT_PARTS:
            raise UserError(f"--init_parts={self.init_parts}: choose {', '.join(INIT_PARTS)}")
        if not self.worker_timeout > 0:
            raise UserError(f"--worker_timeout={self.worker_timeout}: must be more than 0 seconds")


class TrainingDiverged(UserError):
    pass


class FusedAdam(keras.optimizers.Adam):
    """keras's Adam (the same slots, so the same checkpoints) updating each variable with one
    kernel, ResourceApplyAdam, instead of about ten elementwise ops that each read and write
    the whole variable: the same formula, m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2),
    w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), in one pass over memory."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


class GanTrainer:
    """The networks, optimizers and step of one run. With the run's `record`, every checkpoint
    also holds the record's settings, and `restore` refuses a checkpoint of other settings."""

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None,
                 record: run_record.RunRecord | None = None):
        self.config, self.record = config, record
        self.strategy = strategy or runtime.resolve_strategy(config.worker_timeout)
        self.policy = runtime.resolve_precision(config.mixed_precision)
        xla = runtime.resolve_xla(config.xla)
        self.runtime = runtime.describe(self.strategy, self.policy, xla)
        with self.strategy.scope():
            self._build(config)
        if record is not None:  # outside the strategy: it cannot broadcast a string variable
            self._tracked["run_settings"] = run_record.settings_variable(record)
        self._checkpoint(config)
        self.d_loss_fn, self.g_adv_fn = losses.ADVERSARIAL[config.loss.adversarial]
        # autograph=False: the step has no Python control flow on tensors to convert; a tiny
        # model's 3-step run took 12.1 s without the conversion against 16.9 s with it (CPU).
        self.train_step = (self._train_step if config.run_eagerly
                           else tf.function(self._train_step, jit_compile=xla, autograph=False))

    def _build(self, config):
        with runtime.policy_scope(self.policy):
            # The same seed gives the same initial weights; batches are seeded by step (data.py).
            keras.utils.set_random_seed(config.data.seed)
            cfg = config.model
            self.encoder = models.build_encoder(cfg)
            self.decoders = {side: models.build_decoder(cfg, side) for side in SIDES}
            self.discriminators = {side: models.build_discriminator(cfg, side) for side in SIDES}
            self.code_discriminator = (models.build_code_discriminator(cfg)
                                       if config.loss.code_adversarial_weight else None)
            self.expression_regressor = (models.build_expression_regressor(cfg, len(data.EXPRESSION_MEASURES))
                                         if config.loss.expression_weight else None)
        self.g_variables = self.encoder.trainable_variables + [
            v for side in SIDES for v in self.decoders[side].trainable_variables
        ]
        self.d_variables = [v for side in SIDES for v in self.discriminators[side].trainable_variables]
        self.g_optimizer = self._optimizer(config.learning_rate, "g_optimizer")
        self.d_optimizer = self._optimizer(config.d_learning_rate, "d_optimizer")
        # Built now so a restore fills the slots instead of deferring.
        self.g_optimizer.build(self.g_variables)
        self.d_optimizer.build(self.d_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._tracked = dict(
            encoder=self.encoder, decoder_a=self.decoders["a"], decoder_b=self.decoders["b"],
            discriminator_a=self.discriminators["a"], discriminator_b=self.discriminators["b"],
            g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer, step=self.step,
        )
        self.c_variables, self.c_optimizer = [], None
        if self.code_discriminator is not None:  # its own optimizer: D's keeps its checkpoint layout
            self.c_variables = self.code_discriminator.trainable_variables
            self.c_optimizer = self._optimizer(config.d_learning_rate, "c_optimizer")
            self.c_optimizer.build(self.c_variables)
            self._tracked.update(code_discriminator=self.code_discriminator, c_optimizer=self.c_optimizer)
        self.e_variables, self.e_optimizer = [], None
        if self.expression_regressor is not None:
            self.e_variables = self.expression_regressor.trainable_variables
            self.e_optimizer = self._optimizer(config.d_learning_rate, "e_optimizer")
            self.e_optimizer.build(self.e_variables)
            self._tracked.update(expression_regressor=self.expression_regressor, e_optimizer=self.e_optimizer)

    def _checkpoint(self, config):
        self.checkpoint = tf.train.Checkpoint(**self._tracked)
        # With several workers every one saves (saving is collective), but only the chief
        # into model_dir; the others write to a scratch folder of their own.
        self.chief = runtime.is_chief(self.strategy)
        self.checkpoint_dir = config.model_dir if self.chief else os.path.join(
            config.model_dir, f".worker{self.strategy.cluster_resolver.task_id}")
        self._manager = None

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """Made when first used (after `restore`, which may have rewritten a lost index file)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self.checkpoint_dir,
                max_to_keep=self.config.keep_checkpoints if self.chief else 1, step_counter=self.step)
        return self._manager

    def _optimizer(self, learning_rate, name):
        optimizer = FusedAdam(learning_rate, beta_1=0.5, beta_2=0.999, name=name)
        if self.policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_scaled")
        return optimizer

    def set_learning_rates(self, factor: float) -> None:
        """The optimizers' learning rates at `factor` times the configured ones (G's, and D's
        also for the code discriminator and the expression regressor; the optimizers read their
        learning-rate variables inside the step, so nothing is traced again)."""
        for optimizer, rate in ((self.g_optimizer, self.config.learning_rate),
                                (self.d_optimizer, self.config.d_learning_rate),
                                (self.c_optimizer, self.config.d_learning_rate),
                                (self.e_optimizer, self.config.d_learning_rate)):
            if optimizer is None:
                continue
            getattr(optimizer, "inner_optimizer", optimizer).learning_rate = rate * factor

    def progress(self, step: int, seconds: float) -> float:
        """How far through its budget a run is after `step` steps and `seconds` of training in
        this process: of --steps, or of --max_minutes when that runs out first."""
        done = step / self.config.steps
        if self.config.max_minutes:
            done = max(done, seconds / (60.0 * self.config.max_minutes))
        return done

    def distribute(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """The dataset of global batches, split across this strategy's replicas."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def restore(self, log=sys.stderr) -> int:
        """Restores the newest usable checkpoint in model_dir, if any; returns the step.

        Checkpoints are found by listing them, not through the index file (`checkpoints`); an
        unreadable one, or one holding NaN or Inf weights, is passed over with a warning for
        the one before, and when there are checkpoints but none can be used, UserError: a run
        never starts again from step 0 over them. UserError too if the checkpoint was trained
        with other settings than this run's (or than the run record beside it says), so a
        resume never mixes two runs. Once restored, the index file names that checkpoint."""
        model_dir = self.config.model_dir
        restored = None
        for path in checkpoints.readable(model_dir, log):
            self._restore_from(path)
            if self.weights_finite():
                restored = path
                break
            log.write(f"warning: {path}: holds NaN or Inf weights; trying the one before\n")
        if self.chief:
            if restored:
                checkpoints.write_index(model_dir, restored)
            else:
                checkpoints.drop_broken_index(model_dir)
        self._manager = None  # made again from the index as it is now
        return int(self.step.numpy())

    def _restore_from(self, path: str) -> None:
        model_dir = self.config.model_dir
        saved = run_record.checkpoint_settings(path)
        if saved is not None and self.record is not None:
            run_record.check_matches_checkpoint(
                self.record.settings(), path, model_dir,
                "resume with the checkpoint's settings, or train in another --model_dir")
            if os.path.exists(run_record.path_of(model_dir)):
                run_record.check_matches_checkpoint(
                    run_record.read(model_dir).settings(), path, run_record.path_of(model_dir),
                    "the record no longer describes the checkpoint (edited by hand?); put it back as it was")
        # (A checkpoint names each variable by its first path: an optional network's own may
        # sit under an optimizer's, but its optimizer's iteration count is always its own.)
        saved_names = [name for name, _ in tf.train.list_variables(path)]
        for optimizer, network, flag in (("c_optimizer", "the code discriminator", "--code_adversarial_weight"),
                                         ("e_optimizer", "the expression regressor", "--expression_weight")):
            has = any(name.startswith(optimizer + "/") for name in saved_names)
            if has != (optimizer in self._tracked):
                raise UserError(f"{path}: trained {'with' if has else 'without'} {network}; resume "
                                f"with{'' if has else 'out'} {flag}, or train in another --model_dir")
        # A checkpoint from before the settings were saved in it is restored without them.
        tracked = self._tracked if saved is not None else {
            k: v for k, v in self._tracked.items() if k != "run_settings"}
        try:
            tf.train.Checkpoint(**tracked).restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise UserError(f"{path}: does not hold this model's networks ({brief(error)}); resume with the "
                            "flags it was trained with, or train in another --model_dir") from None

    def warm_start(self, model_dir: str, parts: str, log=sys.stderr) -> dict:
        """Starts this run's networks from another run's newest checkpoint (a base pretrained
        on many faces, say): the encoder, with `parts` "generator" the decoders too, with "all"
        the image discriminators as well; the optimizers, a code discriminator and an expression
        regressor start afresh.
        UserError if that run's networks or framing are not this run's."""
        record, path = run_record.read_checked(model_dir)
        ours = self.record.settings() if self.record else None
        for setting, wanted in (("model", dataclasses.asdict(self.config.model)),
                                ("framing", ours["framing"] if ours else None)):
            found = record.settings()[setting]
            if wanted is not None and found != wanted:
                name, theirs, mine = run_record.differences(found, wanted)[0]
                raise UserError(f"--init_from={model_dir}: its {name} is {theirs}, this run's {mine}: "
                                "warm starts need the same networks and framing")
        networks = {"encoder": self.encoder}
        if parts in ("generator", "all"):
            networks.update({f"decoder_{side}": self.decoders[side] for side in SIDES})
        if parts == "all":
            networks.update({f"discriminator_{side}": self.discriminators[side] for side in SIDES})
        try:
            tf.train.Checkpoint(**networks).restore(path).expect_partial().assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise UserError(f"{path}: cannot start from it ({brief(error)})") from None
        step = checkpoints.step_of(path)
        log.write(f"warm start: {', '.join(networks)} from {path} (step {step})\n")
        return {"from": os.path.abspath(path), "step": step, "parts": sorted(networks)}

    def weights_finite(self) -> bool:
        """Whether every floating-point variable a checkpoint holds (the networks' weights and
        the optimizers' slots) is finite: a finite loss can still come with a non-finite
        gradient, which the step applies."""
        networks = (self.encoder, *self.decoders.values(), *self.discriminators.values(),
                    self.code_discriminator, self.expression_regressor)
        variables = [v for network in networks if network is not None for v in network.variables]
        for optimizer in (self.g_optimizer, self.d_optimizer, self.c_optimizer, self.e_optimizer):
            variables += list(optimizer.variables) if optimizer is not None else []
        return all_finite(variables)

    # --- the step ---------------------------------------------------------------------

    def reconstruct(self, side, warped, training=False):
        return self._decode(side, self.encoder(warped, training=training), warped, training)

    def _decode(self, side, code, warped, training):
        out = self.decoders[side](code, training=training)
        rgb = tf.cast(out["rgb"], tf.float32)
        mask = tf.cast(out["mask"], tf.float32)
        return rgb, mask, losses.composite(rgb, mask, warped)

    def _d_step(self, batches, fakes):
        with tf.GradientTape() as tape:
            d_losses = {}
            for side in SIDES:
                # Real and fake in one call: one spectral-norm power iteration, bigger convs.
                real = batches[side]["target"]
                logits = self.discriminators[side](tf.concat([real, fakes[side]], 0), training=True)
                real_logits, fake_logits = tf.split(tf.cast(logits, tf.float32), 2, axis=0)
                d_losses[side] = self.d_loss_fn(real_logits, fake_logits)
            total = tf.add_n(list(d_losses.values()))
            scaled = self._scale(self.d_optimizer, total / self.strategy.num_replicas_in_sync)
        grads = tape.gradient(scaled, self.d_variables)
        self.d_optimizer.apply(grads, self.d_variables)
        return d_losses

    def _g_step(self, batches):
        cfg = self.config.loss
        adversarial = tf.where(self.step >= cfg.adversarial_warmup, cfg.adversarial_weight, 0.0)
        expressive = self.expression_regressor is not None
        with tf.GradientTape() as tape:
            g_losses, mask_means, fakes, swaps = {}, {}, {}, {}
            # The encoder (no batch-dependent layers) runs once on both people's batches.
            both = self.encoder(tf.concat([batches[s]["warped"] for s in SIDES], 0), training=True)
            codes = tf.split(both, len(SIDES), axis=0)
            for index, (side, code) in enumerate(zip(SIDES, codes, strict=True)):
                batch = batches[side]
                target = batch["target"]
                # With the expression term the decoder also draws the other person's codes: the swaps.
                out = self.decoders[side](tf.concat([code, codes[1 - index]], 0) if expressive else code,
                                          training=True)
                rgb, mask = tf.cast(out["rgb"], tf.float32), tf.cast(out["mask"], tf.float32)
                if expressive:
                    rgb, swaps[SIDES[1 - index]] = tf.split(rgb, 2, axis=0)
                    mask = tf.split(mask, 2, axis=0)[0]
                composite = losses.composite(rgb, mask, batch["warped"], drawn=batch["eyes_mouth"])
                weight = 1.0 + (cfg.eyes_mouth_weight - 1.0) * batch["eyes_mouth"]
                loss = losses.weighted_l1(target, composite, weight)
                loss += cfg.raw_rgb_weight * losses.weighted_l1(target, rgb, weight)
                if cfg.ssim_weight:
                    loss += cfg.ssim_weight * losses.ssim_loss(target, composite)
                if cfg.edge_weight:
                    loss += cfg.edge_weight * losses.edge_loss(target, composite)
                loss += cfg.mask_l1_weight * losses.mask_l1(mask)
                if cfg.mask_hull_weight:
                    loss += cfg.mask_hull_weight * losses.weighted_l1(batch["mask"], mask)
                loss += cfg.mask_tv_weight * losses.total_variation(mask)
                logits = tf.cast(self.discriminators[side](composite, training=False), tf.float32)
                loss += adversarial * self.g_adv_fn(logits)
                g_losses[side] = loss
                mask_means[side] = tf.reduce_mean(mask)
                fakes[side] = tf.stop_gradient(composite)
            total = tf.add_n(list(g_losses.values()))
            if expressive:  # each swap against the expression and pose of the face it was made from
                measured = self.expression_regressor(tf.concat([swaps[s] for s in SIDES], 0), training=False)
                wanted = tf.concat([batches[s]["swap_expression"] for s in SIDES], 0)
                g_losses["expression"] = losses.expression_loss(tf.cast(measured, tf.float32), wanted)
                total += tf.where(self.step >= cfg.expression_warmup, cfg.expression_weight, 0.0) * \
                    g_losses["expression"]
            if self.code_discriminator is not None:  # it reaches the encoder alone
                logits = tf.cast(self.code_discriminator(both, training=False), tf.float32)
                g_losses["code"] = losses.code_confusion_loss(logits)
                total += cfg.code_adversarial_weight * g_losses["code"]
            scaled = self._scale(self.g_optimizer, total / self.strategy.num_replicas_in_sync)
        grads = tape.gradient(scaled, self.g_variables)
        self.g_optimizer.apply(grads, self.g_variables)
        return g_losses, mask_means, fakes, tf.stop_gradient(both)

    def _c_step(self, codes):
        """The code discriminator's step on the codes G made this step (A's first, then B's):
        1 for A's, 0 for B's (LSGAN)."""
        with tf.GradientTape() as tape:
            logits = tf.cast(self.code_discriminator(codes, training=True), tf.float32)
            loss = 0.5 * losses.lsgan_discriminator_loss(*tf.split(logits, 2, axis=0))
            scaled = self._scale(self.c_optimizer, loss / self.strategy.num_replicas_in_sync)
        grads = tape.gradient(scaled, self.c_variables)
        self.c_optimizer.apply(grads, self.c_variables)
        return loss

    def _e_step(self, batches):
        """The expression regressor's step on both people's real (augmented) faces against
        their measures."""
        with tf.GradientTape() as tape:
            faces = tf.concat([batches[s]["target"] for s in SIDES], 0)
            measured = tf.cast(self.expression_regressor(faces, training=True), tf.float32)
            loss = losses.expression_loss(measured, tf.concat([batches[s]["expression"] for s in SIDES], 0))
            scaled = self._scale(self.e_optimizer, loss / self.strategy.num_replicas_in_sync)
        grads = tape.gradient(scaled, self.e_variables)
        self.e_optimizer.apply(grads, self.e_variables)
        return loss

    @staticmethod
    def _scale(optimizer, loss):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.scale_loss(loss)
        return loss

    def _replica_step(self, batch_a, batch_b):
        batches = {side: data.augmented(batch, self.config.data)
                   for side, batch in (("a", batch_a), ("b", batch_b))}
        # G first: its composites (from the weights before its update) are D's fakes, so
        # each step runs the generators forward once, not twice.
        g_losses, mask_means, fakes, codes = self._g_step(batches)
        d_losses = self._d_step(batches, fakes)
        scalars = {f"loss/d_{s}": d_losses[s] for s in SIDES}
        scalars.update({f"loss/g_{s}": g_losses[s] for s in SIDES})
        scalars.update({f"mask/mean_{s}": mask_means[s] for s in SIDES})
        if self.code_discriminator is not None:
            scalars.update({"loss/code_d": self._c_step(codes), "loss/code_g": g_losses["code"]})
        if self.expression_regressor is not None:
            scalars.update({"loss/expression_e": self._e_step(batches),
                            "loss/expression_g": g_losses["expression"]})
        return scalars

    def _train_step(self, batch_a, batch_b):
        """One step on a global batch per person; returns (scalars, all finite)."""
        per_replica = self.strategy.run(self._replica_step, args=(batch_a, batch_b))
        mean = tf.distribute.ReduceOp.MEAN
        scalars = {k: self.strategy.reduce(mean, v, axis=None) for k, v in per_replica.items()}
        self.step.assign_add(1)
        finite = tf.reduce_all([tf.math.is_finite(v) for v in scalars.values()])
        return scalars, finite

    # --- previews ---------------------------------------------------------------------

    def preview(self, faces_a, faces_b) -> np.ndarray:
        """uint8 grid: per row input | reconstruction | swap | mask, rows of A then of B."""
        rows = []
        for side, other, faces in (("a", "b", faces_a), ("b", "a", faces_b)):
            _, mask, recon = self.reconstruct(side, faces)
            _, _, swap = self.reconstruct(other, faces)
            mask3 = tf.tile(mask * 2.0 - 1.0, [1, 1, 1, 3])
            rows.append(tf.concat([faces, recon, swap, mask3], axis=2))
        grid = tf.concat([tf.concat(tf.unstack(r), axis=0) for r in rows], axis=1)
        return ((grid.numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def record_of(config: TrainConfig) -> run_record.RunRecord:
    """The run record of a training config (its face folders are read for it)."""
    return run_record.RunRecord.for_training(config.model, config.data.faces_a, config.data.faces_b,
                                             config.data.coverage, config.data.holdout, config.data.seed)


def run(config: TrainConfig, log=sys.stderr, replay_flags: str | None = None) -> dict:
    """Trains until config.steps, resuming from model_dir; returns the last metrics. The run
    record (and `replay_flags` as flags.txt) are written once a resume has been accepted."""
    files.check_folder(config.model_dir, "--model_dir")
    record = record_of(config)
    faces = {side: data.load_faces(folder, record.framing, config.data.holdout)
             for side, folder in (("a", config.data.faces_a), ("b", config.data.faces_b))}
    files.make_folder(config.model_dir, "--model_dir")
    trainer = GanTrainer(config, record=record)
    start = trainer.restore(log)
    _sweep(trainer, log)
    warm = None
    if start == 0 and config.init_from:
        warm = trainer.warm_start(config.init_from, config.init_parts, log)
    elif start and os.path.exists(run_record.path_of(config.model_dir)):
        warm = run_record.read(config.model_dir).warm_start  # kept from the run's first start
    if trainer.chief:
        try:
            run_record.write(config.model_dir, dataclasses.replace(record, runtime=trainer.runtime,
                                                                   warm_start=warm))
            if replay_flags is not None:
                files.write_atomic(os.path.join(config.model_dir, "flags.txt"), replay_flags)
        except OSError as error:
            raise UserError(f"{config.model_dir}: cannot write the run record ({error.strerror})") from None
    if start >= config.steps:
        log.write(f"{config.model_dir}: already at step {start} of {config.steps}\n")
        return {}
    log.write(f"training from step {start} to {config.steps} ({trainer.runtime.label}); "
              f"{len(faces['a'])} faces of A, {len(faces['b'])} of B\n")
    try:
        with _NotLoggedTwice():
            return _train(trainer, faces, start, record, log)
    except _CLUSTER_ERRORS as error:
        if not isinstance(trainer.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise _cluster_failure(trainer, error) from None


def _train(trainer: GanTrainer, faces: dict, start: int, record, log) -> dict:
    config = trainer.config
    folders = {"a": config.data.faces_a, "b": config.data.faces_b}
    weights = {side: data.sampling_weights(folders[side], config.data.holdout, config.data.balance)
               if config.data.balance else None for side in SIDES}
    labels = {side: None for side in SIDES}
    if trainer.expression_regressor is not None:
        labels = data.swap_labels({side: data.expression_labels(folders[side], config.data.holdout)
                                   for side in SIDES})
    streams = [iter(trainer.distribute(data.dataset(faces[s], config.data, start, side=i, weights=weights[s],
                                                    labels=labels[s])))
               for i, s in enumerate(SIDES)]
    preview_faces = {s: _preview_faces(faces[s]) for s in SIDES}
    writer = (tf.summary.create_file_writer(os.path.join(config.model_dir, "train")) if trainer.chief
              else tf.summary.create_noop_writer())
    evaluation = _held_out_evaluation(config, record, log) if trainer.chief and config.eval_every else None
    if config.max_minutes and isinstance(trainer.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise UserError("--max_minutes: workers would stop at different steps; on several machines, "
                        "give --steps")
    stop = StopSignal()
    logged, step, assigned = {}, start, None
    window_start, images = time.perf_counter(), 0
    run_start = window_start
    paused = 0.0  # held-out evaluation time: neither the img/s nor the --max_minutes budget count it
    profiler = _StepProfiler(config.profile_steps if trainer.chief else None,
                             os.path.join(config.model_dir, "train"), log)
    with writer.as_default(), stop, profiler:
        while step < config.steps:
            factor = learning_rate_factor(config.lr_decay, config.lr_decay_start,
                                          trainer.progress(step, time.perf_counter() - run_start - paused))
            if factor != assigned:  # always at the start: a checkpoint holds the rates it ended with
                trainer.set_learning_rates(factor)
                assigned = factor
            profiler.before(step + 1)
            values, finite = trainer.train_step(next(streams[0]), next(streams[1]))
            profiler.after(step + 1, values)
            step += 1
            images += 2 * config.data.batch_size
            out_of_time = bool(config.max_minutes) and (
                time.perf_counter() - run_start - paused >= 60.0 * config.max_minutes)
            last = step == config.steps or out_of_time
            if not bool(finite):
                raise TrainingDiverged(
                    f"{config.model_dir}: a loss became NaN or Inf at step {step} "
                    f"({_format(values)}); the last good checkpoint is kept: "
                    "lower --learning_rate or turn off mixed precision"
                )
            if step % config.log_every == 0 or last:
                now = time.perf_counter()
                rate = images / (now - window_start)
                logged = {k: float(v) for k, v in values.items()}
                for name, value in logged.items():
                    tf.summary.scalar(name, value, step=step)
                tf.summary.scalar("learning_rate", config.learning_rate * factor, step=step)
                tf.summary.scalar("images_per_second", rate, step=step)
                eta = (config.steps - step) * (now - run_start - paused) / (step - start)
                if config.max_minutes:
                    eta = min(eta, 60.0 * config.max_minutes - (now - run_start - paused))
                log.write(f"step {step}/{config.steps}  {_format(logged)}  {rate:.1f} img/s  "
                          f"ETA {clock(eta)}\n")
                window_start, images = now, 0
            if trainer.chief and (step % config.preview_every == 0 or last):
                _write_preview(trainer, preview_faces, config.model_dir, step)
            if evaluation and (step % config.eval_every == 0 or last):
                pause = time.perf_counter()
                evaluation.write(trainer, step, log)
                window_start += time.perf_counter() - pause  # img/s counts training only
                paused += time.perf_counter() - pause
            if step % config.save_every == 0 or last or stop.requested:
                save_checkpoint(trainer, step)
            if stop.requested:
                log.write(f"stopped by signal at step {step}; checkpoint saved\n")
                break
            if out_of_time:
                log.write(f"--max_minutes={config.max_minutes:g} reached at step {step}; checkpoint saved\n")
                break
    writer.flush()
    if not trainer.chief:
        shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
    return logged


# What a collective op raises when another worker of the cluster has gone.
_CLUSTER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                   tf.errors.DeadlineExceededError)


class _NotLoggedTwice(logging.Filter):
    """Drops TensorFlow's INFO record, with a traceback, of an error a replica's thread reports
    to the strategy's coordinator: the error itself is raised in this thread next (and a
    worker lost is then one line)."""

    def filter(self, record):
        return not str(record.msg).startswith("Error reported to Coordinator")

    def __enter__(self):
        tf.get_logger().addFilter(self)

    def __exit__(self, *exc):
        tf.get_logger().removeFilter(self)


def _cluster_failure(trainer: GanTrainer, error: Exception) -> WorkerLost:
    """The one line for a multi-worker run whose peer stopped (killed, crashed, cut off),
    naming the worker that went."""
    # TensorFlow names the silent task when its heartbeat times out; when a collective op
    # notices first (a connection reset), the task whose port is closed is the one gone.
    gone = re.findall(r"^(/job:\S+)$", str(error), re.M) or runtime.unreachable_tasks(trainer.strategy)
    cause = f"{', '.join(gone)} stopped answering" if gone else brief(error)
    latest = checkpoints.newest_readable(trainer.config.model_dir, io.StringIO())
    return WorkerLost(f"{trainer.config.model_dir}: training stopped at step {int(trainer.step.numpy())}: "
                      f"a worker of the cluster failed ({cause}); start every worker again to resume "
                      f"from {latest or 'step 0'}")


def all_finite(variables) -> bool:
    """Whether every floating-point variable of `variables` is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(v)) for v in variables if tf.as_dtype(v.dtype).is_floating]
    return bool(tf.reduce_all(tf.stack(checks)))


def save_checkpoint(trainer, step: int) -> None:
    """Saves a checkpoint of `step` (a GanTrainer's, or any trainer's with `config.model_dir`,
    `manager`, `checkpoint_dir` and `weights_finite()`: the detector's too), unless a weight is
    NaN or Inf: a finite loss can come with a non-finite gradient, and such weights must never
    reach a checkpoint. A save that fails (a full disk) leaves the previous checkpoints as they
    were, and no `_temp` folder."""
    model_dir = trainer.config.model_dir
    kept = trainer.manager.latest_checkpoint or "none"
    if not trainer.weights_finite():
        raise TrainingDiverged(
            f"{model_dir}: weights became NaN or Inf by step {step} although the losses were finite "
            f"(a non-finite gradient); not saved: the last good checkpoint ({kept}) is kept: "
            "lower --learning_rate or turn off mixed precision")
    try:
        trainer.manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
        if isinstance(error, _CLUSTER_ERRORS):
            raise
        checkpoints.sweep_temporary(trainer.checkpoint_dir)
        cause = brief(error).rsplit("; ", 1)[-1]  # TensorFlow's "PATH; File too large"
        raise UserError(f"{model_dir}: the checkpoint of step {step} could not be saved ({cause}); "
                        f"the last one ({kept}) is kept") from None


def _sweep(trainer: GanTrainer, log) -> None:
    """Removes what interrupted runs left: `ckpt-N_temp` folders of unfinished saves, and the
    scratch folders of workers of a multi-worker run (this worker's own, or all of them when
    this run is the only process)."""
    model_dir = trainer.config.model_dir
    if trainer.chief:
        left = checkpoints.sweep_temporary(model_dir)
        if left:
            log.write(f"note: {model_dir}: removed {', '.join(left)}, left by a save that did not finish\n")
    if not trainer.chief:
        shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
    elif not isinstance(trainer.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        for name in os.listdir(model_dir):
            if re.fullmatch(r"\.worker\d+", name):
                shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)


class _Evaluation:
    """Held-out metrics (metrics.HeldOutEvaluation) written under model_dir/eval."""

    def __init__(self, held_out: metrics.HeldOutEvaluation, model_dir: str):
        self.held_out = held_out
        self.writer = tf.summary.create_file_writer(os.path.join(model_dir, "eval"))

    def write(self, trainer: GanTrainer, step: int, log) -> None:
        results = self.held_out(lambda side, views: trainer.reconstruct(side, views)[:2])
        with self.writer.as_default():
            for name, value in results.items():
                tf.summary.scalar(name, value, step=step)
        self.writer.flush()
        log.write(f"eval at step {step} (held-out faces): swaps nearer the target "
                  f"A->B {results['identity/a_to_b_closer_to_b']:.0%}, "
                  f"B->A {results['identity/b_to_a_closer_to_a']:.0%}; reconstruction PSNR "
                  f"A {results['reconstruction/psnr_a']:.2f} dB, B {results['reconstruction/psnr_b']:.2f} dB\n")


def _held_out_evaluation(config: TrainConfig, record: run_record.RunRecord, log) -> _Evaluation | None:
    if config.data.holdout <= 0:
        log.write("no held-out faces (--holdout=0): held-out metrics are not computed\n")
        return None
    faces = {"a": config.data.faces_a, "b": config.data.faces_b}
    try:
        held_out = metrics.HeldOutEvaluation(faces, config.data.holdout, record.framing)
    except UserError as error:
        log.write(f"held-out metrics are not computed: {error}\n")
        return None
    return _Evaluation(held_out, config.model_dir)


def _preview_faces(faces: np.ndarray, count: int = 4) -> tf.Tensor:
    picks = np.linspace(0, len(faces) - 1, count).astype(int)
    return tf.constant(faces[picks, ..., :3], tf.float32) / 127.5 - 1.0


def _write_preview(trainer, preview_faces, model_dir, step):
    grid = trainer.preview(preview_faces["a"], preview_faces["b"])
    tf.summary.image("preview", grid[None], step=step)
    path = os.path.join(model_dir, "preview.png")
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    try:
        files.write_atomic(path, png.tobytes())
    except OSError as error:
        raise UserError(f"{path}: cannot write the preview of step {step} ({error.strerror}); "
                        "the last checkpoint is kept") from None


def _format(values) -> str:
    return "  ".join(f"{k.split('/')[-1]} {float(v):.4f}" for k, v in values.items())


class _StepProfiler:
    """A TensorBoard profile (the Profile tab of model_dir/train) of steps first..last."""

    def __init__(self, steps, logdir, log):
        self.first, self.last = steps or (0, -1)
        self.logdir, self.log, self.running = logdir, log, False

    def before(self, step):
        if step == self.first:
            tf.profiler.experimental.start(self.logdir)
            self.running = True

    def after(self, step, values):
        if self.running and step == self.last:
            tf.nest.map_structure(lambda t: t.numpy(), values)  # the step's work ends in the profile
            self.__exit__()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.running:
            tf.profiler.experimental.stop()
            self.running = False
            self.log.write(f"profile of steps {self.first}-{self.last} written under {self.logdir} "
                           "(TensorBoard's Profile tab)\n")


class StopSignal:
    """SIGINT and SIGTERM ask the loop to save a checkpoint and stop, instead of killing it."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        self.requested = True
