import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf import losses


def constant(value, shape=(2, 8, 8, 3)):
    return tf.fill(shape, float(value))


def test_weighted_l1():
    assert float(losses.weighted_l1(constant(0.5), constant(-0.5))) == pytest.approx(1.0)
    weight = tf.concat([tf.ones((2, 8, 4, 1)), 3.0 * tf.ones((2, 8, 4, 1))], axis=2)
    assert float(losses.weighted_l1(constant(0.0), constant(0.25), weight)) == pytest.approx(0.5)


def test_ssim_loss_is_zero_for_equal_images_and_grows_with_noise():
    image = tf.random.uniform((2, 32, 32, 3), -1, 1, seed=3)
    assert float(losses.ssim_loss(image, image)) == pytest.approx(0.0, abs=1e-5)
    noisy = tf.clip_by_value(image + tf.random.normal(image.shape, stddev=0.3, seed=4), -1, 1)
    assert float(losses.ssim_loss(image, noisy)) > 0.1


def test_edge_loss_sees_edges_not_offsets():
    ramp = tf.reshape(tf.linspace(-1.0, 1.0, 8), (1, 1, 8, 1)) * tf.ones((2, 8, 8, 3))
    assert float(losses.edge_loss(ramp, ramp + 0.3)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.edge_loss(ramp, tf.zeros_like(ramp))) > 0.1


def test_mask_regularisers():
    assert float(losses.mask_l1(constant(0.25, (1, 4, 4, 1)))) == pytest.approx(0.25)
    assert float(losses.total_variation(constant(0.7, (1, 4, 4, 1)))) == 0.0
    stripes = tf.reshape(tf.tile([0.0, 1.0], [8]), (1, 4, 4, 1))
    assert float(losses.total_variation(stripes)) == pytest.approx(1.0)


def test_composite():
    out = losses.composite(constant(1.0), tf.fill((2, 8, 8, 1), 0.25), constant(-1.0))
    np.testing.assert_allclose(out.numpy(), -0.5)


def test_no_loss_on_the_composite_lowers_the_mask_where_the_features_are_drawn():
    # The decoder's rgb is worse than the input here, so L1 on the composite pulls the mask to 0
    # (let the input through) everywhere, except where `drawn` (the eyes and mouth) says no.
    target, rgb, source = constant(0.0), constant(0.5), constant(0.1)
    drawn = tf.concat([tf.zeros((2, 8, 4, 1)), tf.ones((2, 8, 4, 1))], axis=2)
    mask = tf.Variable(tf.fill((2, 8, 8, 1), 0.5))
    with tf.GradientTape() as tape:
        out = losses.composite(rgb, mask, source, drawn=drawn)
        loss = losses.weighted_l1(target, out)
    grad = tape.gradient(loss, mask).numpy()
    np.testing.assert_allclose(out.numpy(), losses.composite(rgb, mask, source).numpy())
    assert np.all(grad[:, :, :4] > 0) and np.all(grad[:, :, 4:] == 0)


@pytest.mark.parametrize("name,d_real_fake,d_value,g_value", [
    ("lsgan", (1.0, 0.0), 0.0, 1.0),  # perfect D: D loss 0, G loss (0 - 1)^2
    ("hinge", (1.0, -1.0), 0.0, 1.0),
])
def test_adversarial_losses_on_known_logits(name, d_real_fake, d_value, g_value):
    d_loss, g_loss = losses.ADVERSARIAL[name]
    real, fake = constant(d_real_fake[0]), constant(d_real_fake[1])
    assert float(d_loss(real, fake)) == pytest.approx(d_value)
    assert float(g_loss(fake)) == pytest.approx(g_value)
    # A fooled discriminator: the generator's loss is lower, the discriminator's higher.
    assert float(g_loss(real)) < float(g_loss(fake))
    assert float(d_loss(fake, real)) > float(d_loss(real, fake))


def test_the_code_confusion_term_pulls_both_people_s_codes_to_where_they_cannot_be_told_apart():
    # A code discriminator that tells A (1) from B (0): a linear read-out of the codes.
    read = tf.constant([0.5, -0.25, 0.0])

    def logits(codes):
        return tf.reduce_sum(codes * read, axis=-1)

    codes = tf.Variable([[1.0, -1.0, 0.3], [0.9, -1.2, 0.0], [-1.0, 1.0, 0.2], [-0.8, 0.7, -0.1]])
    of_a, of_b = np.split(logits(codes).numpy(), 2)
    assert of_a.min() > 0.7 and of_b.max() < -0.3  # told apart
    for _ in range(50):  # the encoder's side: plain gradient steps on the codes themselves
        with tf.GradientTape() as tape:
            loss = losses.code_confusion_loss(logits(codes))
        codes.assign_sub(0.5 * tape.gradient(loss, codes))
    of_a, of_b = np.split(logits(codes).numpy(), 2)
    np.testing.assert_allclose(np.concatenate([of_a, of_b]), 0.5, atol=0.05)  # no longer told apart
    assert float(losses.code_confusion_loss(tf.constant([0.5, 0.5]))) == 0.0
