import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf import models
from faceswap_tf.errors import UserError

TINY = dict(width=0.125, code_size=64)
# The faceswap-GAN 64 px encoder without attention: stem 1,792; conv blocks 73,856 + 295,168
# + 1,180,160 + 4,719,616; dense 16,778,240 + 16,793,600; upscale to 8x8x512 18,876,416.
ENCODER_64_PARAMS = 58_718_848


@pytest.mark.parametrize("resolution, core", [(64, None), (128, None), (128, 64), (64, 32)])
def test_shapes_dtypes_and_value_ranges(resolution, core):
    cfg = models.ModelConfig(resolution=resolution, core_resolution=core, **TINY)
    encoder = models.build_encoder(cfg)
    decoder = models.build_decoder(cfg, "a")
    discriminator = models.build_discriminator(cfg, "a")
    faces = tf.random.uniform((2, resolution, resolution, 3), -1.0, 1.0, seed=1)
    code = encoder(faces)
    assert code.shape == (2, *cfg.code_shape)
    out = decoder(code)
    assert set(out) == {"rgb", "mask"}
    assert out["rgb"].shape == (2, resolution, resolution, 3) and out["rgb"].dtype == tf.float32
    assert out["mask"].shape == (2, resolution, resolution, 1) and out["mask"].dtype == tf.float32
    assert tf.reduce_min(out["mask"]) >= 0.0 and tf.reduce_max(out["mask"]) <= 1.0
    assert tf.reduce_min(out["rgb"]) >= -1.0 and tf.reduce_max(out["rgb"]) <= 1.0
    logits = discriminator(faces)
    assert logits.shape == (2, 8, 8, 1) and logits.dtype == tf.float32
    assert decoder.name == "decoder_a" and discriminator.name == "discriminator_a"


def test_final_activations_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        cfg = models.ModelConfig(**TINY)
        out = models.build_decoder(cfg, "b")(tf.zeros((1, *cfg.code_shape)))
        logits = models.build_discriminator(cfg, "b")(tf.zeros((1, 64, 64, 3)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out["rgb"].dtype == tf.float32 and out["mask"].dtype == tf.float32
    assert logits.dtype == tf.float32


def test_parameter_counts_follow_the_width():
    full = models.ModelConfig(self_attention=False)
    half = models.ModelConfig(self_attention=False, width=0.5)
    # Decoder convolutions scale with width squared.
    ratio = models.build_decoder(full, "a").count_params() / models.build_decoder(half, "a").count_params()
    assert 3.5 < ratio < 4.5
    # The 64 px encoder: the dense bottleneck (16384 -> 1024 -> 16384) holds most of it.
    encoder = models.build_encoder(full)
    dense = encoder.get_layer("bottleneck").count_params() + encoder.get_layer("expand").count_params()
    assert dense == (4 * 4 * 1024 * 1024 + 1024) + (1024 * 4 * 4 * 1024 + 4 * 4 * 1024)
    assert encoder.count_params() == ENCODER_64_PARAMS


def test_pixel_shuffle_moves_channels_into_space():
    x = tf.reshape(tf.range(16, dtype=tf.float32), (1, 1, 1, 16))
    y = models.PixelShuffle()(x)
    assert y.shape == (1, 2, 2, 4)
    np.testing.assert_array_equal(y[0, 0, 1].numpy(), [4, 5, 6, 7])


def test_self_attention_starts_as_the_identity():
    x = tf.random.normal((2, 8, 8, 16), seed=2)
    layer = models.SelfAttention()
    np.testing.assert_allclose(layer(x).numpy(), x.numpy())
    layer.gamma.assign(1.0)
    assert not np.allclose(layer(x).numpy(), x.numpy())


def test_a_bad_resolution_is_refused():
    with pytest.raises(ValueError, match="resolution"):
        models.ModelConfig(resolution=96)
    for core in (32, 256, 96):  # a core of a quarter, of more than the resolution, of another size
        with pytest.raises(UserError, match="--core_resolution"):
            models.ModelConfig(resolution=128, core_resolution=core)


def test_a_half_size_core_draws_the_full_size_face_at_the_half_size_networks_cost():
    """--core_resolution: the 64 px network's layers, taking and drawing 128 px faces. Every
    input pixel reaches the encoder (folded, not resized), each output pixel has weights of its
    own (not a 64 px face scaled up), and the encoder and decoder hold within 1% of the 64 px
    ones' weights (the first and last layers' extra channels; the discriminator, which folds
    its input as the encoder does, 3%), where the 128 px network's hold more."""
    demo = dict(width=0.5, code_size=512, self_attention=False)  # flags/demo.flags' networks
    small, folded, large = (models.ModelConfig(resolution=r, core_resolution=c, **demo)
                            for r, c in ((64, None), (128, 64), (128, None)))
    for build, within in ((models.build_encoder, 1.01), (lambda cfg: models.build_decoder(cfg, "a"), 1.01),
                          (lambda cfg: models.build_discriminator(cfg, "a"), 1.03)):
        ours, theirs, bigger = (build(cfg).count_params() for cfg in (folded, small, large))
        assert theirs < ours <= within * theirs and bigger > within * theirs
    folded = models.ModelConfig(resolution=128, core_resolution=64, **TINY)
    encoder, decoder = models.build_encoder(folded), models.build_decoder(folded, "a")
    face = tf.random.uniform((1, 128, 128, 3), -0.5, 0.5, seed=4)
    # A checkerboard at the pixel's scale averages to nothing over each 2x2 block, so a 64 px
    # view of the face would not change at all; the code does, about as much as for noise.
    checker = 0.25 * (-1.0) ** np.add.outer(np.arange(128), np.arange(128))[None, :, :, None]
    noise = tf.random.uniform((1, 128, 128, 3), -0.25, 0.25, seed=6)
    code = encoder(face).numpy()
    moved = {name: np.abs(encoder(face + change).numpy() - code).mean()
             for name, change in (("checker", checker.astype(np.float32)), ("noise", noise))}
    assert moved["checker"] > 0.2 * moved["noise"] > 0
    rgb = decoder(tf.random.normal((1, *folded.code_shape), seed=5))["rgb"].numpy()[0]
    blocks = rgb.reshape(64, 2, 64, 2, 3)
    assert blocks.std(axis=(1, 3)).mean() > 1e-3  # the four pixels of a 2x2 block differ


def test_leaky_relu_matches_keras_in_value_and_gradient():
    x = tf.constant([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    ours, theirs = models.LeakyReLU(0.2), keras.layers.LeakyReLU(0.2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours, y_theirs = ours(x), theirs(x)
        loss_ours, loss_theirs = tf.reduce_sum(y_ours * x), tf.reduce_sum(y_theirs * x)
    np.testing.assert_array_equal(y_ours.numpy(), y_theirs.numpy())
    np.testing.assert_array_equal(tape.gradient(loss_ours, x).numpy(), tape.gradient(loss_theirs, x).numpy())


def test_output_convolutions_run_in_the_compute_dtype_and_return_float32():
    cfg = models.ModelConfig(**TINY)
    code = tf.random.normal((2, *cfg.code_shape), seed=3)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = models.build_decoder(cfg, "a")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    plain = models.build_decoder(cfg, "a")
    plain.set_weights(mixed.get_weights())
    assert mixed.get_layer("rgb").conv_dtype == "bfloat16" and plain.get_layer("rgb").conv_dtype == "float32"
    out, reference = mixed(code), plain(code)
    for name in ("rgb", "mask"):
        assert out[name].dtype == tf.float32
        # bfloat16 keeps 8 bits: the outputs agree to about 1% of their range, not exactly.
        np.testing.assert_allclose(out[name].numpy(), reference[name].numpy(), atol=0.03)
        assert not np.array_equal(out[name].numpy(), reference[name].numpy())


@pytest.mark.parametrize("size, shape", [(3, (2, 8, 6, 5)), (5, (2, 16, 12, 8)), (7, (1, 10, 14, 4))])
def test_a_folded_convolution_is_the_convolution(size, shape):
    x = tf.random.normal(shape, seed=7)
    kernel = tf.random.normal((size, size, shape[-1], 3), seed=8)
    reference = tf.nn.conv2d(x, kernel, 1, "SAME")
    np.testing.assert_allclose(models.folded_convolution(x, kernel).numpy(), reference.numpy(), atol=1e-4)
    with tf.GradientTape(persistent=True) as tape:  # and so are its gradients
        tape.watch([x, kernel])
        folded = tf.reduce_sum(models.folded_convolution(x, kernel) ** 2)
        plain = tf.reduce_sum(tf.nn.conv2d(x, kernel, 1, "SAME") ** 2)
    for a, b in zip(tape.gradient(folded, [x, kernel]), tape.gradient(plain, [x, kernel]), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-2)


def test_the_output_convolutions_fold_and_give_the_plain_result():
    cfg = models.ModelConfig(**TINY)
    decoder = models.build_decoder(cfg, "a")
    code = tf.random.normal((2, *cfg.code_shape), seed=3)
    graph = tf.function(decoder).get_concrete_function(tf.TensorSpec(code.shape)).graph
    assert any(op.type == "SpaceToDepth" for op in graph.get_operations())  # the 5x5 convolutions fold
    folded = decoder(code)
    with models.plain_convolutions():
        plain = decoder(code)
        graph = tf.function(decoder).get_concrete_function(tf.TensorSpec((1, *cfg.code_shape))).graph
    assert not any(op.type == "SpaceToDepth" for op in graph.get_operations())
    for name in ("rgb", "mask"):
        np.testing.assert_allclose(folded[name].numpy(), plain[name].numpy(), atol=1e-5)


@pytest.mark.parametrize("strides", [1, 2])
def test_patch_conv_equals_conv(strides):
    x = tf.random.normal((2, 8, 8, 16), seed=4)
    conv = keras.layers.Conv2D(24, 3, strides=strides, padding="same")
    patch = models.PatchConv2D(24, 3, strides=strides, padding="same")
    conv.build(x.shape)
    patch.build(x.shape)
    patch.set_weights(conv.get_weights())
    np.testing.assert_allclose(patch(x).numpy(), conv(x).numpy(), rtol=1e-5, atol=1e-5)
