import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf import models

TINY = dict(width=0.125, code_size=64)
# The faceswap-GAN 64 px encoder without attention: stem 1,792; conv blocks 73,856 + 295,168
# + 1,180,160 + 4,719,616; dense 16,778,240 + 16,793,600; upscale to 8x8x512 18,876,416.
ENCODER_64_PARAMS = 58_718_848


@pytest.mark.parametrize("resolution", [64, 128])
def test_shapes_dtypes_and_value_ranges(resolution):
    cfg = models.ModelConfig(resolution=resolution, **TINY)
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
