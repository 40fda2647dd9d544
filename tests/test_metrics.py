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


def test_retrieval_is_nearest_neighbour_between_the_galleries():
    a = identity.Gallery(np.eye(128)[:2])
    b = identity.Gallery(np.eye(128)[2:4] * 0.5)
    probes = np.stack([np.eye(128)[0] * 0.9, np.eye(128)[3] * 0.6])
    found = metrics.retrieval(probes, {"a": a, "b": b})
    np.testing.assert_allclose(found["distance_a"], [0.1, np.sqrt(1 + 0.36)], atol=1e-6)
    np.testing.assert_allclose(found["distance_b"], [np.sqrt(0.81 + 0.25), 0.1], atol=1e-6)
    assert found["closer_to_b"].tolist() == [False, True]


def test_following_measures_correlation_and_how_far_the_swap_opens():
    t = np.linspace(0, 4 * np.pi, 60)
    mouth = 0.2 + 0.15 * np.sin(t)
    same = metrics.following(mouth, mouth)
    assert abs(same["correlation"] - 1) < 1e-9 and abs(same["gain"] - 1) < 1e-9
    half = metrics.following(mouth, 0.1 + 0.5 * mouth)
    assert abs(half["correlation"] - 1) < 1e-9 and abs(half["gain"] - 0.5) < 1e-9
    still = metrics.following(mouth, np.full_like(mouth, 0.2))
    assert still["correlation"] == 0.0 and abs(still["gain"]) < 1e-12
    rng = np.random.default_rng(0)
    noise = metrics.following(mouth, 0.2 + 0.15 * rng.standard_normal(len(mouth)))
    assert abs(noise["correlation"]) < 0.3 and abs(noise["gain"]) < 0.3
    assert math.isnan(metrics.following(np.ones(5), mouth[:5])["correlation"])  # A never moves


def test_motion_tells_a_face_that_moves_from_a_still_and_a_jittering_one():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 2 * np.pi, 40)[:, None, None]
    base = rng.uniform(0.2, 0.8, (1, 51, 2))
    original = base + 0.02 * np.sin(t + rng.uniform(0, 6, (1, 51, 2)))
    follows = metrics.motion([(original, original + 0.05 + 0.0002 * rng.standard_normal(original.shape))])
    assert follows["correlation"] > 0.95 and 0.9 < follows["speed"] < 1.1
    still = metrics.motion([(original, np.repeat(base, 40, axis=0))])
    assert still["correlation"] == 0.0 and still["speed"] == 0.0
    jitter = metrics.motion([(original, base + 0.03 * rng.standard_normal(original.shape))])
    assert abs(jitter["correlation"]) < 0.2 and jitter["speed"] > 3
    gaps = original.copy()
    gaps[10] = np.nan  # a face not found breaks the velocity there, nothing else
    assert metrics.motion([(original, gaps)])["values"] < follows["values"]


def test_detail_of_a_real_face_blur_and_noise_never_beat_the_original(data_dir):
    import cv2

    from faceswap_tf import media
    from faceswap_tf.faces import detect, masks
    from tests.conftest import data_path

    frame = media.read_image(data_path(data_dir, "images", "faces", "biden2.jpg"))
    face = detect.FaceDetector(detect.DetectorConfig(min_face_size=160))(frame)[0]
    inner = masks.face_mask(face.landmarks[align.INNER], frame.shape[:2]) > 127
    rng = np.random.default_rng(0)

    def score(image):
        grey = [cv2.cvtColor(i, cv2.COLOR_RGB2GRAY).astype(np.float32) for i in (frame, image)]
        scale = float(np.linalg.norm(np.subtract(*align.eye_centres(face.landmarks)))) / 90
        energies = [metrics.band_energies(g, inner, scale) for g in grey]
        return metrics.sharpness(energies[1] / energies[0])

    blurred = cv2.GaussianBlur(frame, (0, 0), 3.0)
    noisy = np.clip(frame + rng.normal(0, 8, frame.shape), 0, 255).astype(np.uint8)
    blurred_noisy = np.clip(blurred + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
    sharpened = np.clip(2.0 * frame - cv2.GaussianBlur(frame, (0, 0), 1.5), 0, 255).astype(np.uint8)
    scores = {"faithful": score(frame), "blurred": score(blurred), "noise": score(noisy),
              "blurred+noise": score(blurred_noisy), "sharpened": score(sharpened)}
    assert scores["faithful"] == 1.0
    for control in ("blurred", "noise", "blurred+noise", "sharpened"):  # more detail is not better
        assert scores[control] < 0.8, scores
    # Noise cannot make up for blur: the octaves noise fills do not hide those blur empties.
    assert scores["blurred+noise"] < 0.6 and scores["blurred"] < 0.6, scores


def _real_face(data_dir):
    from faceswap_tf import media
    from faceswap_tf.faces import detect
    from tests.conftest import data_path

    frame = media.read_image(data_path(data_dir, "images", "faces", "biden2.jpg"))
    return frame, detect.FaceDetector(detect.DetectorConfig(min_face_size=160))(frame)[0].landmarks


def _lab_shifted(image, shift, weight):
    """`image` with `shift` (L*, a*, b*) added where `weight` ([H, W] in [0, 1]) is 1."""
    import cv2

    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab += weight[..., None] * np.float32(shift)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def test_colour_seam_and_flicker_of_a_real_face_tell_another_tone_an_edge_and_a_moving_edge(data_dir):
    import cv2

    from faceswap_tf.faces import masks

    frame, landmarks = _real_face(data_dir)
    hull = (masks.face_mask(landmarks, frame.shape[:2]) > 127).astype(np.float32)
    ocular = float(np.linalg.norm(np.subtract(*align.eye_centres(landmarks))))
    depth = cv2.distanceTransform(hull.astype(np.uint8), cv2.DIST_L2, 5)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    step = int(round(0.1 * ocular))  # the same pasted face, a tenth of the eye span to the right
    moved = np.zeros_like(hull)
    moved[:, step:] = hull[:, :-step]
    images = {
        "same": frame,
        "encoded, softened": cv2.GaussianBlur(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED), (0, 0), 1.5),
        "pasted, hard edge": _lab_shifted(frame, (10, 0, 8), hull),  # another tone, a visible outline
        # The same tone inside, brought to the frame's over half the eye span: no seam.
        "pasted, blended edge": _lab_shifted(frame, (10, 0, 8), np.clip(depth / (0.5 * ocular), 0, 1)),
        "pasted, moved": _lab_shifted(frame, (10, 0, 8), moved),
    }
    found = metrics.colour_mismatch(frame, images, landmarks)
    colour = {name: m.colour for name, m in found.items()}
    seam = {name: m.seam for name, m in found.items()}
    assert colour["same"] == 0.0 and seam["same"] == 0.0
    assert colour["encoded, softened"] < 1.0 and seam["encoded, softened"] < 1.5, (colour, seam)  # not a seam
    assert colour["pasted, hard edge"] > 9.0 and seam["pasted, hard edge"] > 9.0, (colour, seam)  # |(10, 0, 8)|
    assert seam["pasted, blended edge"] < 0.5 * seam["pasted, hard edge"], seam
    assert metrics.colour_flicker(found["same"], found["same"]) == 0.0
    assert metrics.colour_flicker(found["pasted, hard edge"], found["pasted, hard edge"]) == 0.0  # steady
    assert metrics.colour_flicker(found["pasted, hard edge"], found["pasted, moved"]) > 1.0
