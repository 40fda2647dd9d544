import cv2
import numpy as np
import pytest

from faceswap_tf.faces import align


def similarity(scale, degrees, tx, ty):
    theta = np.deg2rad(degrees)
    rotation = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return np.hstack([rotation, [[tx], [ty]]])


@pytest.mark.parametrize("scale,degrees,tx,ty", [(1.0, 0.0, 0.0, 0.0), (2.7, 33.0, -40.0, 125.5),
                                                 (0.31, -170.0, 900.0, 3.0)])
def test_umeyama_recovers_a_known_similarity(scale, degrees, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, size=(51, 2))
    known = similarity(scale, degrees, tx, ty)
    dst = align.transform_points(known, src)
    np.testing.assert_allclose(align.umeyama(src, dst), known, atol=1e-6)


def test_umeyama_is_least_squares_under_noise():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, size=(68, 2))
    known = similarity(1.5, 12.0, 10.0, -20.0)
    dst = align.transform_points(known, src) + rng.normal(0, 0.5, size=src.shape)
    fitted = align.umeyama(src, dst)
    np.testing.assert_allclose(fitted, known, atol=0.05 * np.abs(known).max())
    residual = np.square(align.transform_points(fitted, src) - dst).sum()
    assert residual <= np.square(align.transform_points(known, src) - dst).sum()


def test_alignment_matrix_maps_a_transformed_template_onto_the_crop_template():
    size, padding = 256, 0.2
    frame_landmarks = align.transform_points(
        similarity(3.0, -25.0, 140.0, 60.0), align.TEMPLATE_68
    )
    matrix = align.alignment_matrix(frame_landmarks, size, padding)
    np.testing.assert_allclose(
        align.transform_points(matrix, frame_landmarks),
        align.template_points(size, padding), atol=1e-6,
    )


def test_frame_to_crop_to_frame_round_trip_of_points():
    rng = np.random.default_rng(2)
    landmarks = align.transform_points(
        similarity(2.2, 17.0, 300.0, 200.0), align.TEMPLATE_68
    ) + rng.normal(0, 2.0, size=(68, 2))
    matrix = align.alignment_matrix(landmarks, 256, 0.2)
    back = align.transform_points(align.invert(matrix), align.transform_points(matrix, landmarks))
    np.testing.assert_allclose(back, landmarks, atol=1e-9)


def test_frame_to_crop_to_frame_round_trip_of_pixels():
    # A smooth image, so bilinear resampling twice changes it by little.
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    frame = np.stack([128 + 100 * np.sin(xx / 37), 128 + 100 * np.cos(yy / 29),
                      128 + 60 * np.sin((xx + yy) / 53)], axis=-1).astype(np.uint8)
    landmarks = align.transform_points(similarity(180.0, 10.0, 230.0, 150.0), align.TEMPLATE_68)
    matrix = align.alignment_matrix(landmarks, 256, 0.2)
    crop = align.warp_face(frame, matrix, 256)
    back = align.unwarp_face(crop, matrix, frame.shape)
    inside = align.unwarp_face(np.full((256, 256), 255, np.uint8), matrix, frame.shape)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)) == 255
    assert inside.sum() > 20_000
    error = np.abs(back.astype(int) - frame.astype(int))[inside]
    assert error.mean() < 1.5 and np.percentile(error, 99) < 8
    assert np.all(back[~(cv2.dilate(inside.astype(np.uint8), np.ones((9, 9))) > 0)] == 0)


def test_template_is_normalised_symmetric_and_level():
    inner = align.TEMPLATE_68[align.INNER]
    np.testing.assert_allclose((inner.min(axis=0) + inner.max(axis=0)) / 2, [0.5, 0.5], atol=1e-3)
    assert (inner.max(axis=0) - inner.min(axis=0)).max() == pytest.approx(1.0, abs=1e-3)
    mirrored = align.TEMPLATE_68[align.MIRROR] * [-1, 1] + [1, 0]
    np.testing.assert_allclose(mirrored, align.TEMPLATE_68, atol=1e-3)
    left, right = align.eye_centres(align.TEMPLATE_68)
    assert left[1] == pytest.approx(right[1], abs=1e-3)


def test_mirror_is_an_involution_of_all_68_points():
    assert sorted(align.MIRROR) == list(range(68))
    np.testing.assert_array_equal(align.MIRROR[align.MIRROR], np.arange(68))


def test_fit_template_recovers_the_template_from_transformed_copies():
    rng = np.random.default_rng(3)
    shapes = [
        align.transform_points(
            similarity(rng.uniform(50, 300), rng.uniform(-40, 40), *rng.uniform(0, 500, 2)),
            align.TEMPLATE_68,
        )
        for _ in range(12)
    ]
    np.testing.assert_allclose(align.fit_template(np.stack(shapes)), align.TEMPLATE_68, atol=1e-6)


def test_weighted_umeyama_is_exact_and_favours_heavy_points():
    rng = np.random.default_rng(4)
    src = rng.uniform(0, 400, size=(68, 2))
    known = similarity(1.7, -8.0, 30.0, 12.0)
    dst = align.transform_points(known, src)
    np.testing.assert_allclose(align.umeyama(src, dst, align.FIT_WEIGHTS), known, atol=1e-6)
    # Move the lips only: the weighted fit (eyes heavy, lips light) barely follows.
    moved = dst.copy()
    moved[48:68] += [0.0, 25.0]
    eyes = slice(36, 48)
    plain = align.transform_points(align.umeyama(src[17:], moved[17:]), src)
    weighted = align.transform_points(align.umeyama(src[17:], moved[17:], align.FIT_WEIGHTS[17:]), src)
    assert np.abs(weighted[eyes] - dst[eyes]).max() < 0.25 * np.abs(plain[eyes] - dst[eyes]).max()
