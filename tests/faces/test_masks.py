import cv2
import numpy as np
import pytest

from faceswap_tf.faces import align, masks


def crop_landmarks(size=256, padding=0.2):
    return align.template_points(size, padding)


def inside(mask, points):
    xs, ys = np.round(points).astype(int).T
    return mask[ys, xs] == 255


def test_region_masks_cover_their_landmarks_and_stay_apart():
    points = crop_landmarks()
    regions = masks.region_masks(points, 256)
    assert set(regions) == {"face", "eyes", "mouth"}
    for mask in regions.values():
        assert mask.shape == (256, 256) and mask.dtype == np.uint8
    assert inside(regions["eyes"], points[36:48]).all()
    assert inside(regions["mouth"], points[48:68]).all()
    assert not inside(regions["eyes"], points[48:68]).any()
    assert not inside(regions["mouth"], points[36:48]).any()
    assert not (regions["eyes"] & regions["mouth"]).any()


def test_regions_lie_inside_the_face_and_the_face_inside_the_crop():
    points = crop_landmarks()
    regions = masks.region_masks(points, 256)
    face = regions["face"] > 0
    assert (regions["mouth"][~face] == 0).mean() > 0.999
    assert (regions["eyes"][~face] == 0).mean() > 0.999
    # With the default padding the whole face hull fits in the crop, with a margin.
    rows, cols = np.nonzero(face)
    assert rows.min() > 5 and cols.min() > 5 and rows.max() < 250 and cols.max() < 250
    assert 0.3 < face.mean() < 0.7


@pytest.mark.parametrize("size", [64, 256, 512])
def test_face_mask_area_is_the_hull_area_to_within_a_pixel_rim(size):
    points = crop_landmarks(size).astype(np.float32)
    hull = cv2.convexHull(points)
    area, perimeter = cv2.contourArea(hull), cv2.arcLength(hull, closed=True)
    drawn = masks.face_mask(points, size).astype(np.float64).sum() / 255
    assert area <= drawn <= area + perimeter
