"""Loss functions of the faceswap-GAN step: pure, weights passed in, formula in each docstring.

Images are in [-1, 1], masks in [0, 1], all [N, H, W, C]; every loss returns a scalar.
"""

import tensorflow as tf


def weighted_l1(target, prediction, weight_map=None):
    """L = mean(w * |y - y_hat|), with w = 1 where no weight map is given.

    `weight_map` [N, H, W, 1] raises the eye and mouth regions (for example 1 + 2 * eyes_mouth).
    """
    error = tf.abs(target - prediction)
    if weight_map is not None:
        error = error * weight_map
    return tf.reduce_mean(error)


def ssim_loss(target, prediction):
    """L = 1 - mean(SSIM(y, y_hat)), SSIM on images mapped to [0, 1] (tf.image.ssim)."""
    return 1.0 - tf.reduce_mean(
        tf.image.ssim((target + 1.0) / 2.0, (prediction + 1.0) / 2.0, max_val=1.0)
    )


def edge_loss(target, prediction):
    """L = mean(|grad_x y - grad_x y_hat|) + mean(|grad_y y - grad_y y_hat|)."""
    dy_t, dx_t = tf.image.image_gradients(target)
    dy_p, dx_p = tf.image.image_gradients(prediction)
    return tf.reduce_mean(tf.abs(dx_t - dx_p)) + tf.reduce_mean(tf.abs(dy_t - dy_p))


def mask_l1(mask):
    """L = mean(m): pushes the mask towards 0 (use the input) where the decoder is not needed."""
    return tf.reduce_mean(mask)


def total_variation(mask):
    """L = mean(|m[i+1, j] - m[i, j]|) + mean(|m[i, j+1] - m[i, j]|): a smooth mask."""
    return tf.reduce_mean(tf.abs(mask[:, 1:] - mask[:, :-1])) + tf.reduce_mean(
        tf.abs(mask[:, :, 1:] - mask[:, :, :-1])
    )


def composite(rgb, mask, source, drawn=None):
    """The swapped face: m * rgb + (1 - m) * source.

    Where `drawn` [N, H, W, 1] is 1 (the eyes and mouth), the value is the same but no
    gradient reaches the mask through it: a loss on the composite could otherwise lower the
    mask there, letting the input's own eyes and mouth through instead of drawing them, which
    at conversion shows A's features on B's face (trained with the eyes and mouth weighted 10,
    a model did exactly that in 5 minutes). The mask's own terms still shape it there.
    """
    if drawn is not None:
        mask = mask * (1.0 - drawn) + tf.stop_gradient(mask) * drawn
    return mask * rgb + (1.0 - mask) * source


def lsgan_discriminator_loss(real_logits, fake_logits):
    """L_D = mean((D(x) - 1)^2) + mean(D(G(z))^2)   (Mao et al., 2017)."""
    return tf.reduce_mean(tf.square(real_logits - 1.0)) + tf.reduce_mean(tf.square(fake_logits))


def lsgan_generator_loss(fake_logits):
    """L_G = mean((D(G(z)) - 1)^2)."""
    return tf.reduce_mean(tf.square(fake_logits - 1.0))


def hinge_discriminator_loss(real_logits, fake_logits):
    """L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))   (Lim and Ye, 2017)."""
    return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))


def hinge_generator_loss(fake_logits):
    """L_G = -mean(D(G(z)))."""
    return -tf.reduce_mean(fake_logits)


def code_confusion_loss(logits):
    """L_E = mean((C(code) - 0.5)^2): the encoder's term against the code discriminator C
    (trained with `lsgan_discriminator_loss`, A's codes as 1 and B's as 0), pulling each
    person's codes to where C cannot tell whose they are (a least-squares form of the domain
    confusion of Tzeng et al., 2015; symmetric, where DeepFaceLab's "true face" pulls only the
    face-giver's codes towards the other person's)."""
    return tf.reduce_mean(tf.square(logits - 0.5))


def expression_loss(measured, wanted):
    """L = mean(|E(x) - y|): an expression regressor E's reading of faces x against the
    measures y they should show (mouth and eye opening, head yaw and pitch, each in units of
    its spread: `data.EXPRESSION_MEASURES`). E learns it on real faces; a swap gets it against
    the measures of the face it was made from, so its mouth opens, its eyes close and its
    head turns as that face's do (a landmark-consistency term, as in face reenactment)."""
    return tf.reduce_mean(tf.abs(measured - wanted))


# name -> (discriminator loss, generator loss)
ADVERSARIAL = {
    "lsgan": (lsgan_discriminator_loss, lsgan_generator_loss),
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
}
