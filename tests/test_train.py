"""The train stage: data pipeline, the GAN step, checkpoints and the entry point."""

import dataclasses
import glob
import io
import os

import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf import data, losses, models, run_record, runtime, trainer
from faceswap_tf.errors import UserError
from tests.conftest import ROOT, run_module, tiny_config, tiny_view


def test_holdout_is_the_end_of_each_source(face_dirs):
    from faceswap_tf.faces import alignments
    records = alignments.load(os.path.join(face_dirs["a"], "alignments.json"))
    train, held = run_record.split_holdout(records, 0.2)
    assert len(train) + len(held) == len(records) and held
    assert max(r.frame for r in train) < min(r.frame for r in held)
    last = max(r.frame for r in records) + 1
    assert min(r.frame for r in held) >= 0.8 * last - 10


def test_faces_load_with_masks_at_the_model_resolution(face_dirs):
    faces = data.load_faces(face_dirs["a"], tiny_view(), 0.2)
    assert faces.dtype == np.uint8 and faces.shape[1:] == (64, 64, 5)
    face_mask, eyes_mouth = faces[..., 3] > 127, faces[..., 4] > 127
    assert 0.3 < face_mask.mean() < 0.8
    assert (face_mask | ~eyes_mouth).mean() > 0.99  # eyes and mouth lie inside the face


def test_augmentation_moves_image_and_masks_together_and_is_reproducible():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    stack = np.concatenate([image, image[..., :1], image[..., 1:2]], axis=-1)
    config = data.DataConfig("a", "b", colour=0.0, warp=0.03)
    seed = tf.constant([1, 2], tf.int64)
    out = data.augment(tf.constant(stack), config, seed)
    np.testing.assert_allclose((out["target"][..., 0] + 1) / 2, out["mask"][..., 0], atol=1e-5)
    np.testing.assert_allclose((out["target"][..., 1] + 1) / 2, out["eyes_mouth"][..., 0], atol=1e-5)
    assert np.abs(out["warped"] - out["target"]).mean() > 0.05  # the input is distorted
    again = data.augment(tf.constant(stack), config, seed)
    np.testing.assert_array_equal(out["warped"].numpy(), again["warped"].numpy())
    other = data.augment(tf.constant(stack), config, tf.constant([1, 3], tf.int64))
    assert not np.array_equal(out["target"].numpy(), other["target"].numpy())


def test_no_warp_means_input_equals_target():
    image = tf.random.uniform((2, 16, 16, 3), -1, 1, seed=5)
    np.testing.assert_allclose(data.random_warp(image, 0.0, tf.constant([0, 0], tf.int64)), image,
                               atol=1e-6)


def variables_changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables, strict=True)]


def test_d_step_changes_only_d_and_g_step_only_g(face_dirs, tmp_path):
    gan = trainer.GanTrainer(tiny_config(face_dirs, tmp_path))
    faces = {s: data.load_faces(face_dirs[s], tiny_view(), 0.2) for s in trainer.SIDES}
    batches = {s: data.augmented(next(iter(data.dataset(faces[s], gan.config.data, side=i))), gan.config.data)
               for i, s in enumerate(trainer.SIDES)}
    # Attention starts switched off (gamma 0), which zeroes its projections' gradients;
    # switch it on so that every variable has a gradient to show.
    for network in [gan.encoder, *gan.decoders.values(), *gan.discriminators.values()]:
        for layer in network.layers:
            if isinstance(layer, models.SelfAttention):
                layer.gamma.assign(0.1)
    g_before = [v.numpy() for v in gan.g_variables]
    d_before = [v.numpy() for v in gan.d_variables]
    fakes = {s: gan.reconstruct(s, batches[s]["warped"])[2] for s in trainer.SIDES}
    gan._d_step(batches, fakes)
    assert all(variables_changed(d_before, gan.d_variables))
    assert not any(variables_changed(g_before, gan.g_variables))
    d_before = [v.numpy() for v in gan.d_variables]
    gan._g_step(batches)
    assert not any(variables_changed(d_before, gan.d_variables))
    # All but the attention query/key kernels of a fresh model: the untrained code is nearly
    # constant in space, so their gradients (~1e-11) move them below float32 resolution.
    unchanged = [v.path for v, changed in zip(gan.g_variables, variables_changed(g_before, gan.g_variables),
                                                strict=True) if not changed]
    assert all("/query/" in path or "/key/" in path for path in unchanged), unchanged
    assert not set(map(id, gan.g_variables)) & set(map(id, gan.d_variables))


def test_the_code_term_moves_the_encoder_alone_and_its_discriminator_learns_who_is_who(face_dirs, tmp_path):
    faces = {s: data.load_faces(face_dirs[s], tiny_view(), 0.2) for s in trainer.SIDES}
    plain = trainer.GanTrainer(tiny_config(face_dirs, tmp_path / "plain"))
    coded = trainer.GanTrainer(tiny_config(face_dirs, tmp_path / "coded",
                                           loss=trainer.LossConfig(code_adversarial_weight=1.0)))
    config = plain.config.data
    batches = {s: data.augmented(next(iter(data.dataset(faces[s], config, side=i))), config)
               for i, s in enumerate(trainer.SIDES)}
    for mine, theirs in zip(plain.g_variables, coded.g_variables, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())  # one seed, one start
    d_before = [v.numpy() for v in coded.d_variables + coded.c_variables]
    plain._g_step(batches)
    *_, codes = coded._g_step(batches)
    differs = variables_changed([v.numpy() for v in plain.g_variables], coded.g_variables)
    encoder = len(coded.encoder.trainable_variables)
    assert any(differs[:encoder]), "the code term did not reach the encoder"
    assert not any(differs[encoder:]), "the code term reached a decoder"
    assert not any(variables_changed(d_before, coded.d_variables + coded.c_variables))
    assert codes.shape == (8, *coded.config.model.code_shape)
    # The code discriminator learns which codes are A's (the first half) and which B's. An
    # untrained encoder's codes hardly differ, so these are two drawn clouds, one per person.
    coded.set_learning_rates(30.0)
    rng = np.random.default_rng(0)
    codes = tf.constant(np.concatenate([rng.normal(0.3, 1.0, (4, *codes.shape[1:])),
                                        rng.normal(-0.3, 1.0, (4, *codes.shape[1:]))]), tf.float32)
    first = float(coded._c_step(codes))
    for _ in range(20):
        last = float(coded._c_step(codes))
    of_a, of_b = np.split(coded.code_discriminator(codes).numpy(), 2)
    assert last < 0.5 * first and of_a.mean() > of_b.mean() + 0.5, (first, last, of_a.mean(), of_b.mean())


# The optional networks: (their LossConfig setting, their scalars, their checkpoint entries,
# how the refusal to resume the other way names them).
OPTIONAL_NETWORKS = {
    "code": (dict(code_adversarial_weight=0.5), {"loss/code_d", "loss/code_g"},
             {"code_discriminator", "c_optimizer"}, ("the code discriminator", "--code_adversarial_weight")),
    "expression": (dict(expression_weight=0.5, expression_warmup=1), {"loss/expression_e", "loss/expression_g"},
                   {"expression_regressor", "e_optimizer"},
                   ("the expression regressor", "--expression_weight")),
}


def test_a_run_with_the_optional_networks_logs_them_resumes_as_if_uninterrupted_and_only_with_them(
        face_dirs, smoke_model, tmp_path):
    import shutil

    # Both networks on in one run (one trace each way instead of two): each logs its losses,
    # is saved, and is restored so that a stopped run goes on as if it had not been stopped.
    both = {k: v for settings, *_ in OPTIONAL_NETWORKS.values() for k, v in settings.items()}
    loss = trainer.LossConfig(**both)
    log = io.StringIO()
    straight = trainer.run(tiny_config(face_dirs, tmp_path / "straight", steps=4, log_every=4, loss=loss),
                           log=log)
    trainer.run(tiny_config(face_dirs, tmp_path / "resumed", steps=2, loss=loss), log=io.StringIO())
    resumed = trainer.run(tiny_config(face_dirs, tmp_path / "resumed", steps=4, log_every=4, loss=loss),
                          log=io.StringIO())
    saved = {line.split("/")[0] for line in checkpoint_layout(str(tmp_path / "resumed" / "ckpt-4"))}
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert resumed[name] == pytest.approx(straight[name], rel=1e-4, abs=1e-6), name
    # A run resumes with each network only as it started: one line either way, nothing trained.
    # A plain run's checkpoint: a copy of the shared smoke model (tiny_config, 6 steps).
    plain = tmp_path / "plain"
    shutil.copytree(smoke_model, plain)
    for network, (settings, scalars, saved_parts, (named, flag)) in OPTIONAL_NETWORKS.items():
        assert set(straight) >= scalars, network
        for name in scalars:
            assert name.split("/")[1] + " " in log.getvalue(), name
        assert saved_parts <= saved, network
        other = {k: v for n, (s, *_) in OPTIONAL_NETWORKS.items() if n != network for k, v in s.items()}
        with pytest.raises(UserError, match=f"trained with {named}; resume with {flag}"):
            trainer.run(tiny_config(face_dirs, tmp_path / "resumed", steps=5, loss=trainer.LossConfig(**other)),
                        log=io.StringIO())
        with pytest.raises(UserError, match=f"trained without {named}; resume without {flag}"):
            trainer.run(tiny_config(face_dirs, plain, steps=7, loss=trainer.LossConfig(**settings)),
                        log=io.StringIO())
    assert sorted(glob.glob(str(tmp_path / "resumed" / "ckpt-*.index")))[-1].endswith("ckpt-4.index")
    assert sorted(glob.glob(str(plain / "ckpt-*.index")))[-1].endswith("ckpt-6.index")


def test_expression_labels_follow_the_landmarks_a_swap_is_measured_from_each_neutral_and_a_mirror_turns_the_yaw(
        face_dirs):
    from faceswap_tf.faces import coverage

    raw = {s: data.expression_labels(face_dirs[s], 0.2) for s in trainer.SIDES}
    measured = coverage.measure_records("a", data.face_records(face_dirs["a"], 0.2))
    faces = data.load_faces(face_dirs["a"], tiny_view(), 0.2)
    assert raw["a"].shape == (len(faces), 4)
    for column, name in enumerate(data.EXPRESSION_MEASURES):
        np.testing.assert_allclose(raw["a"][:, column], measured.values[name], rtol=1e-5, atol=1e-5)
    labels = data.swap_labels(raw)
    deviations = np.concatenate([raw[s] - np.median(raw[s], axis=0) for s in trainer.SIDES])
    for side in trainer.SIDES:  # each measure in units of its spread within a person, pooled
        np.testing.assert_allclose(labels[side]["expression"] * deviations.std(axis=0), raw[side], rtol=1e-4,
                                   atol=1e-5)
    # A's most neutral face, swapped, should read as B's neutral; how far A's mouth opens beyond
    # A's own neutral, a swap of it opens beyond B's.
    for side, other in (("a", "b"), ("b", "a")):
        shift = labels[side]["swap_expression"] - labels[side]["expression"]
        np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-5)  # one offset
        np.testing.assert_allclose(np.median(labels[side]["swap_expression"], axis=0),
                                   np.median(labels[other]["expression"], axis=0), rtol=1e-4, atol=1e-4)
    config = data.DataConfig(face_dirs["a"], face_dirs["b"], batch_size=32)
    batch = next(iter(data.dataset(faces, config, labels=labels["a"])))
    out = data.augmented(batch, config)
    affine = batch["affine"].numpy()
    mirrored = affine[:, 0] * affine[:, 4] - affine[:, 1] * affine[:, 3] < 0
    assert 0 < mirrored.sum() < 32  # both kinds drawn
    for name in data.LABELS:
        want = batch[name].numpy() * np.where(mirrored[:, None], [1, 1, -1, 1], 1)
        np.testing.assert_allclose(out[name].numpy(), want, rtol=1e-6)


def test_the_expression_term_reaches_the_encoder_and_the_decoders_through_the_swaps(face_dirs, tmp_path):
    faces = {s: data.load_faces(face_dirs[s], tiny_view(), 0.2) for s in trainer.SIDES}
    labels = data.swap_labels({s: data.expression_labels(face_dirs[s], 0.2) for s in trainer.SIDES})
    plain = trainer.GanTrainer(tiny_config(face_dirs, tmp_path / "plain", loss=trainer.LossConfig(
        expression_weight=1.0, expression_warmup=10**6)))
    expressive = trainer.GanTrainer(tiny_config(face_dirs, tmp_path / "expressive", loss=trainer.LossConfig(
        expression_weight=1.0, expression_warmup=0)))
    # A third with the same start, to compute the term by hand.
    fresh = trainer.GanTrainer(tiny_config(face_dirs, tmp_path / "fresh", loss=trainer.LossConfig(
        expression_weight=1.0)))
    for gan in (plain, expressive, fresh):  # an untrained regressor reads about 0 for every face: widen it
        layer = gan.expression_regressor.get_layer("measures")
        layer.kernel.assign(layer.kernel * 300.0)
    config = plain.config.data
    batches = {s: data.augmented(next(iter(data.dataset(faces[s], config, side=i, labels=labels[s]))), config)
               for i, s in enumerate(trainer.SIDES)}
    for mine, theirs in zip(plain.g_variables + plain.e_variables,
                            expressive.g_variables + expressive.e_variables, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())  # one seed, one start
    untouched = [v.numpy() for v in expressive.d_variables + expressive.e_variables]
    held, _, _, _ = plain._g_step(batches)
    on, _, _, _ = expressive._g_step(batches)
    # The reconstructions are the same with the term or without it (the swaps ride along in the
    # decoders' batch).
    none, _, _, _ = trainer.GanTrainer(tiny_config(face_dirs, tmp_path / "none"))._g_step(batches)
    assert "expression" not in none
    for side in trainer.SIDES:
        assert float(on[side]) == pytest.approx(float(held[side]), rel=1e-5)
        assert float(on[side]) == pytest.approx(float(none[side]), rel=1e-4)
    assert float(on["expression"]) == pytest.approx(float(held["expression"]), rel=1e-5)
    # By hand, from the third trainer: A's codes drawn by B's decoder are measured against A's
    # faces' swap labels, and B's through A's against B's.
    code = dict(zip(trainer.SIDES, tf.split(fresh.encoder(tf.concat(
        [batches[s]["warped"] for s in trainer.SIDES], 0)), 2), strict=True))
    swaps = tf.concat([fresh.decoders["b"](code["a"])["rgb"], fresh.decoders["a"](code["b"])["rgb"]], 0)
    measured = fresh.expression_regressor(swaps)
    paired = [batches[s]["swap_expression"] for s in trainer.SIDES]
    assert float(on["expression"]) == pytest.approx(
        float(losses.expression_loss(measured, tf.concat(paired, 0))), rel=1e-4)
    assert float(on["expression"]) != pytest.approx(
        float(losses.expression_loss(measured, tf.concat(paired[::-1], 0))), rel=1e-3)
    differs = variables_changed([v.numpy() for v in plain.g_variables], expressive.g_variables)
    encoder = len(expressive.encoder.trainable_variables)
    assert any(differs[:encoder]), "the expression term did not reach the encoder"
    half = (len(differs) - encoder) // 2
    assert any(differs[encoder:encoder + half]) and any(differs[encoder + half:]), "a decoder was not reached"
    assert not any(variables_changed(untouched, expressive.d_variables + expressive.e_variables))
    # An untrained regressor learns the measures of real faces (a fixed batch, a few steps).
    learner = trainer.GanTrainer(tiny_config(face_dirs, tmp_path / "learner", loss=trainer.LossConfig(
        expression_weight=1.0)))
    both = tf.concat([batches[s]["target"] for s in trainer.SIDES], 0)
    wanted = tf.concat([batches[s]["expression"] for s in trainer.SIDES], 0)
    before = float(losses.expression_loss(learner.expression_regressor(both), wanted))
    learner.set_learning_rates(10.0)
    first = float(learner._e_step(batches))
    for _ in range(30):
        last = float(learner._e_step(batches))
    assert first == pytest.approx(before, rel=1e-4) and last < 0.5 * first, (before, first, last)
    assert float(losses.expression_loss(learner.expression_regressor(both), wanted)) < 0.5 * before


def test_learning_rate_decay_shapes():
    linear = [trainer.learning_rate_factor("linear", 0.5, p) for p in (0.0, 0.5, 0.75, 1.0, 1.2)]
    assert linear == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    cosine = [trainer.learning_rate_factor("cosine", 0.0, p) for p in (0.0, 0.5, 0.9, 1.0)]
    assert cosine == pytest.approx([1.0, 0.5, 0.5 * (1 - np.cos(0.1 * np.pi)), 0.0])
    assert trainer.learning_rate_factor("none", 0.0, 0.99) == 1.0
    with pytest.raises(trainer.UserError, match="--lr_decay_start=1"):
        tiny_config({"a": "a", "b": "b"}, "m", lr_decay="linear", lr_decay_start=1.0)
    with pytest.raises(trainer.UserError, match="--lr_decay=step"):
        tiny_config({"a": "a", "b": "b"}, "m", lr_decay="step")
    timed = trainer.GanTrainer(tiny_config({"a": "a", "b": "b"}, "m", steps=1000, max_minutes=2.0))
    assert timed.progress(100, 90.0) == pytest.approx(0.75)  # the budget that runs out first
    assert timed.progress(900, 90.0) == pytest.approx(0.9)


def test_a_run_resumes_as_if_uninterrupted_and_a_decayed_rate_follows_its_steps(face_dirs, tmp_path):
    decay = dict(lr_decay="linear", lr_decay_start=0.5, log_every=6)
    straight = trainer.run(tiny_config(face_dirs, tmp_path / "straight", steps=6, **decay), log=io.StringIO())
    constant = trainer.run(tiny_config(face_dirs, tmp_path / "constant", steps=6, log_every=6),
                           log=io.StringIO())
    assert any(abs(straight[k] - constant[k]) > 1e-3 * abs(constant[k]) for k in straight)
    # Steps 1-3 are before the decay starts; stopped there, then resumed to the end: the same
    # next steps (weights, optimizer slots, the data streams' place, the rate) as the run above.
    trainer.run(tiny_config(face_dirs, tmp_path / "resumed", steps=3), log=io.StringIO())
    log = io.StringIO()
    resumed = trainer.run(tiny_config(face_dirs, tmp_path / "resumed", steps=6, **decay), log=log)
    assert "training from step 3 to 6" in log.getvalue()
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert resumed[name] == pytest.approx(straight[name], rel=1e-4, abs=1e-6), name

    def last_rate(model_dir, **settings):
        gan = trainer.GanTrainer(tiny_config(face_dirs, model_dir, **settings))
        gan.restore(io.StringIO())
        return float(gan.g_optimizer.learning_rate), float(gan.d_optimizer.learning_rate)

    assert last_rate(tmp_path / "resumed", steps=6) == pytest.approx((1e-4 / 3, 1e-4 / 3))  # step 6's
    # A checkpoint keeps the rate it ended with; a run without decay goes on at the full rate.
    trainer.run(tiny_config(face_dirs, tmp_path / "resumed", steps=7), log=io.StringIO())
    assert last_rate(tmp_path / "resumed", steps=7) == pytest.approx((1e-4, 1e-4))


def distributed_matches_one_device(faces_a, faces_b, model_dir):
    """Run in a fresh process (logical devices must be set before TensorFlow starts): three
    steps on one CPU device, then the same three global batches split across two logical
    CPU devices by MirroredStrategy; prints both runs' metrics and weights as JSON."""
    import json

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    config = tiny_config({"a": faces_a, "b": faces_b}, model_dir)
    faces = {s: data.load_faces(getattr(config.data, f"faces_{s}"), tiny_view(), 0.2) for s in trainer.SIDES}
    streams = [data.dataset(faces[s], config.data, side=i) for i, s in enumerate(trainer.SIDES)]
    batches = [list(b) for b in zip(*(stream.take(3) for stream in streams), strict=True)]
    runs = {}
    for name, strategy in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        gan = trainer.GanTrainer(config, strategy)
        metrics, split = [], []
        for batch_a, batch_b in batches:
            a, b = (next(iter(gan.distribute(tf.data.Dataset.from_tensors(x)))) for x in (batch_a, batch_b))
            split = [int(t.shape[0]) for t in strategy.experimental_local_results(a["faces"])]
            values, _ = gan.train_step(a, b)
            metrics.append({k: float(v) for k, v in values.items()})
        runs[name] = {"metrics": metrics, "split": split, "step": int(gan.step.numpy()),
                      "weights": [v.numpy().tolist() for v in gan.g_variables + gan.d_variables]}
    print(json.dumps(runs))


def test_the_step_on_two_logical_cpus_matches_one_device(face_dirs, tmp_path):
    import json
    import subprocess
    import sys

    script = ("import sys; from tests.test_train import distributed_matches_one_device as f; "
              "f(*sys.argv[1:])")
    result = subprocess.run([sys.executable, "-c", script, face_dirs["a"], face_dirs["b"], str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    one, two = runs["one"], runs["two"]
    assert one["split"] == [4] and two["split"] == [2, 2]  # each replica took half the batch
    assert one["step"] == two["step"] == 3
    for step_one, step_two in zip(one["metrics"], two["metrics"], strict=True):
        for name in step_one:
            assert step_two[name] == pytest.approx(step_one[name], rel=1e-5, abs=1e-6), name
    # Summed across replicas, the gradients round differently; Adam divides by sqrt(v) + eps,
    # which turns that rounding into up to ~2% of one step (lr) on weights whose gradient is
    # near zero. A wrong split or wrong examples moves weights by whole steps.
    step_size = tiny_config({"a": "a", "b": "b"}, "m").learning_rate
    for w_one, w_two in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(np.array(w_two), np.array(w_one), rtol=1e-4, atol=0.05 * step_size)
    assert one["metrics"][0] != one["metrics"][2]  # the steps did train


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(face_dirs, tmp_path):
    trainer.run(tiny_config(face_dirs, tmp_path), log=io.StringIO())
    poisoned = tiny_config(face_dirs, tmp_path, steps=6,
                           loss=trainer.LossConfig(mask_l1_weight=float("nan")))
    with pytest.raises(trainer.TrainingDiverged, match="NaN or Inf at step 4"):
        trainer.run(poisoned, log=io.StringIO())
    gan = trainer.GanTrainer(tiny_config(face_dirs, tmp_path))
    assert gan.restore() == 3
    assert all(np.isfinite(v.numpy()).all() for v in gan.g_variables + gan.d_variables)


def test_the_smoke_flagfile_trains_saves_and_resumes(face_dirs, tmp_path):
    model_dir = tmp_path / "model"
    common = ["--flagfile=flags/smoke.flags", f"--faces_a={face_dirs['a']}",
              f"--faces_b={face_dirs['b']}", f"--model_dir={model_dir}"]
    first = run_module("faceswap_tf.train", *common)
    assert first.returncode == 0, first.stderr[-2000:]
    # A failed grappler pass leaves the step's graph unoptimised (it used to be the remapper).
    assert " failed: " not in first.stderr, [line for line in first.stderr.splitlines() if " failed: " in line]
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")
    flags_txt = (model_dir / "flags.txt").read_text()
    assert "--steps=6" in flags_txt and f"--model_dir={model_dir}" in flags_txt
    assert (model_dir / "preview.png").stat().st_size > 1000
    tags = set()
    for path in glob.glob(str(model_dir / "train" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {"loss/g_a", "loss/g_b", "loss/d_a", "loss/d_b", "mask/mean_a", "images_per_second",
            "preview"} <= tags
    # Held-out metrics every 3 steps (smoke.flags), under eval/, at steps 3 and 6.
    evals = {}
    for path in glob.glob(str(model_dir / "eval" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                evals.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    names = [f"identity/{s}_to_{o}_{what}" for s, o in (("a", "b"), ("b", "a"))
             for what in (f"closer_to_{o}", f"distance_to_{o}", f"distance_to_{s}")]
    names += [f"reconstruction/{m}_{s}" for m in ("psnr", "ssim") for s in "ab"]
    assert set(names) <= set(evals), sorted(evals)
    for name in names:
        assert sorted(evals[name]) == [3, 6], (name, evals[name])
    for step in (3, 6):
        assert 0.0 <= evals["identity/a_to_b_closer_to_b"][step] <= 1.0
        assert 0.0 < evals["identity/a_to_b_distance_to_a"][step] < 2.0
        assert 5.0 < evals["reconstruction/psnr_a"][step] < 40.0
        assert -1.0 <= evals["reconstruction/ssim_b"][step] <= 1.0
    assert "eval at step 6 (held-out faces): swaps nearer the target A->B" in first.stderr
    # The resume without the held-out evaluation (its galleries are most of a smoke run's time).
    second = run_module("faceswap_tf.train", *common, "--steps=9", "--eval_every=0")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "training from step 6 to 9" in second.stderr
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-9")


def test_kill_9_loses_at_most_the_steps_since_the_last_save(face_dirs, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    model_dir = tmp_path / "model"
    command = [sys.executable, "-m", "faceswap_tf.train", "--flagfile=flags/smoke.flags",
               f"--faces_a={face_dirs['a']}", f"--faces_b={face_dirs['b']}", f"--model_dir={model_dir}",
               "--steps=100000", "--save_every=1", "--log_every=1000", "--preview_every=1000",
               "--eval_every=0"]
    killed_at = []
    for delay in (0.0, 0.35, 0.8):  # different moments of a save (one is written every step)
        before = tf.train.latest_checkpoint(str(model_dir))
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while tf.train.latest_checkpoint(str(model_dir)) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(delay)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed_at.append(tf.train.latest_checkpoint(str(model_dir)))
        assert killed_at[-1] != before, "no checkpoint was written before the kill"
    gan = trainer.GanTrainer(tiny_config(face_dirs, model_dir))
    step = gan.restore()
    assert step == int(killed_at[-1].rsplit("-", 1)[1]) and step >= 3
    assert all(np.isfinite(v.numpy()).all() for v in gan.g_variables + gan.d_variables)
    resumed = run_module("faceswap_tf.train", *command[3:7], f"--steps={step + 2}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"training from step {step} to {step + 2}" in resumed.stderr


def test_missing_faces_folder_is_one_clear_error(tmp_path):
    result = run_module("faceswap_tf.train", "--flagfile=flags/smoke.flags",
                        f"--faces_a={tmp_path}/nope", f"--faces_b={tmp_path}/nope",
                        f"--model_dir={tmp_path}/m")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path}/nope: no alignments.json" in result.stderr


def test_precision_and_xla_choices():
    assert runtime.resolve_precision("off") == "float32"
    assert runtime.resolve_precision("float16") == "mixed_float16"
    assert runtime.resolve_xla("off") is False and runtime.resolve_xla("on") is True
    assert runtime.resolve_xla("auto") is bool(tf.config.list_physical_devices("GPU"))
    with pytest.raises(trainer.UserError, match="--xla=maybe"):
        dataclasses.replace(trainer.TrainConfig("m", data.DataConfig("a", "b")), xla="maybe")


@pytest.mark.parametrize("name", ["smoke", "demo", "gan64", "gan128", "pretrain", "cpu_hour"])
def test_every_flagfile_resolves_to_a_valid_config(name):
    from absl import flags as absl_flags

    from faceswap_tf import train

    argv = ["train", f"--flagfile={os.path.join(ROOT, 'flags', name + '.flags')}",
            "--faces_a=a", "--faces_b=b", "--model_dir=m"]
    absl_flags.FLAGS(argv)
    try:
        config = train.config_from_flags()
    finally:
        absl_flags.FLAGS.unparse_flags()
    assert config.model.resolution in models.RESOLUTIONS and config.steps >= 6
    assert config.data.batch_size >= 4


def test_faces_are_drawn_by_weight_and_rare_faces_weigh_more(face_dirs):
    from faceswap_tf.faces import coverage

    faces = np.zeros((4, 8, 8, 5), np.uint8)
    faces[..., 0] = np.arange(4)[:, None, None]  # each face says which it is
    config = data.DataConfig("a", "b", batch_size=8)
    drawn = [b["faces"][:, 0, 0, 0].numpy() for b in data.dataset(faces, config, weights=[1, 1, 1, 9]).take(50)]
    share = np.bincount(np.concatenate(drawn), minlength=4) / 400
    assert 0.65 < share[3] < 0.85 and all(0.02 < s < 0.15 for s in share[:3]), share
    again = [b["faces"][:, 0, 0, 0].numpy() for b in data.dataset(faces, config, weights=[1, 1, 1, 9]).take(50)]
    np.testing.assert_array_equal(np.concatenate(drawn), np.concatenate(again))  # a function of (seed, step)
    # On real faces of B: the widest mouths and the most turned heads are drawn more often.
    weights = data.sampling_weights(face_dirs["b"], 0.2, 1.0)
    measures = coverage.measure_folder(face_dirs["b"], data.face_records(face_dirs["b"], 0.2))
    assert len(weights) == measures.faces and abs(weights.mean() - 1) < 1e-9 and weights.max() <= 5 * (1 + 1e-5)
    wide = measures.values["mouth"] >= np.percentile(measures.values["mouth"], 90)
    assert weights[wide].sum() / weights.sum() > 1.2 * wide.mean()
    assert np.all(data.sampling_weights(face_dirs["b"], 0.2, 0.0) == 1.0)


@pytest.mark.parametrize("name", sorted(os.path.basename(p)[:-6] for p in glob.glob(
    os.path.join(ROOT, "flags", "study", "*.flags"))))
def test_every_study_variant_is_the_demo_recipe_with_a_valid_change(name):
    from absl import flags as absl_flags

    from faceswap_tf import train

    demo = os.path.join(ROOT, "flags", "demo.flags")
    variant = os.path.join(ROOT, "flags", "study", name + ".flags")
    argv = ["train", f"--flagfile={demo}", f"--flagfile={variant}", "--faces_a=a", "--faces_b=b",
            "--model_dir=m"]
    absl_flags.FLAGS(argv)
    try:
        config = train.config_from_flags()
    finally:
        absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["train", f"--flagfile={demo}", "--faces_a=a", "--faces_b=b", "--model_dir=m"])
    try:
        base = train.config_from_flags()
    finally:
        absl_flags.FLAGS.unparse_flags()
    assert config != base  # the variant changes something, and only through valid flags


def checkpoint_layout(path):
    """Every variable of a checkpoint by each of its paths in the object graph (which is
    what a restore matches), with its shape, sorted: 'encoder/_operations/1/_kernel [3, 3, 3, 8]'."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(path)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    shapes = reader.get_variable_to_shape_map()
    lines, queue = [], [(0, "")]
    while queue:
        node_id, prefix = queue.pop()
        lines += [f"{prefix} {shapes[a.checkpoint_key]}" for a in graph.nodes[node_id].attributes]
        queue += [(c.node_id, f"{prefix}/{c.local_name}".lstrip("/")) for c in graph.nodes[node_id].children]
    return sorted(lines)


@pytest.mark.parametrize("resolution", [64, 128])
def test_checkpoints_of_the_main_layout_still_restore(tmp_path, resolution):
    # tests/data/checkpoint_layout_*.txt was written by the layout of d820f78 (before the
    # step's speed work): the same paths and shapes mean its checkpoints restore here.
    config = tiny_config({"a": "a", "b": "b"}, tmp_path,
                         model=models.ModelConfig(resolution=resolution, width=0.125, code_size=64))
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, resolution=resolution))
    layout = checkpoint_layout(trainer.GanTrainer(config).manager.save(0))
    with open(os.path.join(ROOT, "tests", "data", f"checkpoint_layout_{resolution}.txt")) as expected:
        assert layout == expected.read().splitlines()


def test_profile_steps_write_a_tensorboard_profile(face_dirs, tmp_path):
    log = io.StringIO()
    trainer.run(tiny_config(face_dirs, tmp_path, profile_steps=(2, 3)), log=log)
    assert glob.glob(str(tmp_path / "train" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert "profile of steps 2-3 written" in log.getvalue()


@pytest.mark.parametrize("value, expected", [("", None), ("10,12", (10, 12)), ("3,3", (3, 3)),
                                             ("5,2", "error"), ("0,2", "error"), ("x", "error")])
def test_profile_steps_flag(value, expected):
    from absl import flags as absl_flags

    from faceswap_tf import train

    absl_flags.FLAGS(["train", "--faces_a=a", "--faces_b=b", "--model_dir=m", f"--profile_steps={value}"])
    try:
        if expected == "error":
            with pytest.raises(trainer.UserError, match="--profile_steps"):
                train.config_from_flags()
        else:
            assert train.config_from_flags().profile_steps == expected
    finally:
        absl_flags.FLAGS.unparse_flags()


def test_a_warm_start_takes_another_runs_networks_and_refuses_other_ones(face_dirs, smoke_model, tmp_path):
    base = trainer.GanTrainer(tiny_config(face_dirs, smoke_model))
    assert base.restore() == 6
    config = tiny_config(face_dirs, tmp_path / "new", init_from=smoke_model, steps=1)
    fresh = trainer.GanTrainer(config, record=trainer.record_of(config))
    done = fresh.warm_start(smoke_model, "generator", io.StringIO())
    assert done["step"] == 6 and done["parts"] == ["decoder_a", "decoder_b", "encoder"]
    for ours, theirs in ((fresh.encoder, base.encoder), (fresh.decoders["b"], base.decoders["b"])):
        for a, b in zip(ours.weights, theirs.weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    ours, theirs = fresh.discriminators["a"].weights[0], base.discriminators["a"].weights[0]
    assert not np.array_equal(ours.numpy(), theirs.numpy())  # D starts afresh with "generator"
    # Through run(): the record says where the weights began, and a resume keeps saying it.
    trainer.run(config, log=io.StringIO())
    assert run_record.read(str(tmp_path / "new")).warm_start["step"] == 6
    trainer.run(dataclasses.replace(config, steps=2), log=io.StringIO())
    assert run_record.read(str(tmp_path / "new")).warm_start["from"].endswith("ckpt-6")
    wider = tiny_config(face_dirs, tmp_path / "wider", model=models.ModelConfig(width=0.25, code_size=64))
    with pytest.raises(trainer.UserError, match="its width is 0.125, this run's 0.25"):
        trainer.GanTrainer(wider, record=trainer.record_of(wider)).warm_start(smoke_model, "encoder")
