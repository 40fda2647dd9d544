"""The crop framing: one map from frame to crop to the network's view, in OpenCV and TensorFlow."""

import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf.errors import UserError
from faceswap_tf.faces import align
from faceswap_tf.framing import Framing


def test_the_view_is_the_centre_coverage_of_the_crop_and_back():
    view = Framing(256, 0.2, coverage=0.5, resolution=64)
    corners = align.transform_points(view.view_from_crop, [[64, 64], [192, 192], [128, 128]])
    np.testing.assert_allclose(corners, [[0, 0], [64, 64], [32, 32]])
    back = align.transform_points(view.crop_from_view, corners)
    np.testing.assert_allclose(back, [[64, 64], [192, 192], [128, 128]], atol=1e-9)


def test_opencv_and_tensorflow_views_agree_and_the_blend_puts_the_view_back():
    rng = np.random.default_rng(0)
    # A smooth image, so bilinear (TF) and area (OpenCV) sampling may only differ by rounding.
    small = rng.integers(0, 256, (2, 16, 16, 3)).astype(np.float32)
    crops = tf.image.resize(small, [256, 256], method="bicubic").numpy().clip(0, 255).astype(np.uint8)
    view = Framing(256, 0.2, coverage=0.85, resolution=128)
    ours = np.stack([view.to_view(crop) for crop in crops]).astype(np.float32)
    theirs = (view.tf_to_view(tf.constant(crops)).numpy() + 1.0) * 127.5
    assert np.abs(ours - theirs).mean() < 1.5 and np.abs(ours - theirs).max() < 12
    # A mask of 1 pastes the view's pixels back where the view reaches, 0 outside it.
    out = view.tf_blend(tf.constant(crops), view.tf_to_view(tf.constant(crops)), tf.ones([2, 128, 128, 1]))
    mask = out["mask"].numpy()[..., 0]
    assert mask[:, 128, 128].min() == 1.0 and mask[:, 5, 5].max() == 0.0
    inside = mask > 0.999
    assert np.abs(out["swapped"].numpy()[inside].astype(int) - crops[inside]).mean() < 3


def test_a_crop_framing_is_checked_and_round_trips_through_json():
    view = Framing(256, 0.2, coverage=0.85, resolution=64)
    assert Framing.from_json(view.to_json(), "x") == view
    assert Framing.from_json(Framing(128, 0.1).to_json(), "x") == Framing(128, 0.1)
    with pytest.raises(UserError, match="--coverage=0.1"):
        Framing(256, 0.2, coverage=0.1, resolution=64)
    with pytest.raises(UserError, match="x: framing: expected"):
        Framing.from_json({"crop_size": 256}, "x")
    with pytest.raises(ValueError, match="no view"):
        Framing(256, 0.2).view_from_crop  # noqa: B018


def test_crop_outline_is_where_the_crop_came_from():
    landmarks = align.template_points(200, 0.2) * 0.5 + [40.0, 30.0]  # a face at half scale
    framing = Framing(200, 0.2)
    matrix = framing.crop_matrix(landmarks)
    np.testing.assert_allclose(framing.crop_outline(matrix),
                               [[40, 30], [140, 30], [140, 130], [40, 130]], atol=1e-6)
