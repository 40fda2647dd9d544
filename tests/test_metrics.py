"""The metric functions shared by training's eval and faceswap_tf.evaluate."""

import math

import numpy as np

from faceswap_tf import metrics
from faceswap_tf.faces import align, identity


def test_psnr_of_known_errors():
    a = np.zeros((8, 8, 3), np.uint8)
    assert metrics.psnr(a, a) == math.inf
    assert metrics.psnr(a, a + 1) == 10 * math.log10(255.0**2)
    assert abs(metrics.psnr(a, np.full_like(a, 16)) - 20 * math.log10(255 / 16)) < 1e-9


def test_ssim_is_one_for_the_same_image_falls_with_noise_and_is_near_zero_for_another():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_allclose(metrics.ssim(images, images), 1.0, atol=1e-5)
    scores = [metrics.ssim(images, np.clip(images + rng.normal(0, sigma, images.shape), 0, 255))
              for sigma in (10, 40, 120)]
    assert (1.0 > scores[0]).all() and (scores[0] > scores[1]).all() and (scores[1] > scores[2]).all()
    other = rng.integers(0, 256, images.shape).astype(np.uint8)
    assert (np.abs(metrics.ssim(images, other)) < 0.05).all()


def test_expression_error_ignores_pose_and_scale_but_not_an_opened_mouth():
    face = align.template_points(200, 0.2)
    turn = np.array([[0.8 * np.cos(0.3), -0.8 * np.sin(0.3), 40], [0.8 * np.sin(0.3), 0.8 * np.cos(0.3), -7]])
    assert metrics.expression_error(face, face) < 1e-12
    assert metrics.expression_error(face, align.transform_points(turn, face)) < 1e-9
    opened = face.copy()
    opened[[56, 57, 58, 65, 66, 67]] += [0, 20]  # lower lip down by about a third of the eye span
    left, right = align.eye_centres(face)
    moved = 6 * 20 / 51 / np.linalg.norm(right - left)  # the mean displacement, with no fit
    # The fit leans on the eyes and nose, so the moved lip mostly stays where the error shows.
    assert 0.9 * moved < metrics.expression_error(face, opened) < 1.4 * moved  # unweighted: 1.8x


def test_retrieval_is_nearest_neighbour_between_the_galleries():
    a = identity.Gallery(np.eye(128)[:2])
    b = identity.Gallery(np.eye(128)[2:4] * 0.5)
    probes = np.stack([np.eye(128)[0] * 0.9, np.eye(128)[3] * 0.6])
    found = metrics.retrieval(probes, {"a": a, "b": b})
    np.testing.assert_allclose(found["distance_a"], [0.1, np.sqrt(1 + 0.36)], atol=1e-6)
    np.testing.assert_allclose(found["distance_b"], [np.sqrt(0.81 + 0.25), 0.1], atol=1e-6)
    assert found["closer_to_b"].tolist() == [False, True]
