"""Putting a swapped face back into its frame: colour, mask, blending, the visible label.

Everything before the paste works in the aligned crop (S x S), so its cost does not grow with
the frame; `paste` maps the result back through the inverse alignment onto the face's
bounding region of the frame only.
"""

import cv2
import numpy as np

from faceswap_tf.faces import align, expression, masks

COLOUR_MODES = ("none", "lab", "hist", "local")
BLEND_MODES = ("alpha", "seamless")
# `local`: the scale, of the inter-ocular distance, of the skin colour matched place by place:
# lighting and tone, far coarser than a feature (an eye is about 0.3 wide), so the face's own
# shape and features stay the swap's.
LOCAL_SIGMA = 0.25


def colour_transfer(face: np.ndarray, reference: np.ndarray, mask: np.ndarray, mode: str,
                    landmarks: np.ndarray | None = None) -> np.ndarray:
    """`face` (uint8 RGB crop) with its colours matched to `reference` inside `mask` > 0.5,
    measured on the skin only when the face's crop-space `landmarks` are given
    (`masks.skin_mask`: an open mouth, dark eyes or brows differ between two people in size,
    and counted in, they would shift the skin's colour). `lab` moves each L*a*b* channel's
    mean and standard deviation onto the reference's (Reinhard et al., 2001), the spread only
    ever narrowed (by at most half): widening it to a sharp original's would amplify the
    blotches of a blurry swap, which looked worse on the sample pair; `hist` maps each RGB
    channel's histogram onto the reference's; `local` is `lab`, and then, place by place, the
    skin's colour at the scale of lighting (a Gaussian of `LOCAL_SIGMA` of the inter-ocular
    distance) moved onto the reference's: a face lit from one side, or darker at the jaw than at
    the brow, is matched across the whole face and meets the frame without a seam at the mask's
    edge. The correction reaches the features from the skin around them."""
    if mode not in COLOUR_MODES:
        raise ValueError(f"colour mode {mode!r}: choose one of {COLOUR_MODES}")
    if mode == "none" or np.count_nonzero(mask > 0.5) < 16:
        return face
    if mode == "hist":
        inside = _skin_within(mask > 0.5, landmarks)
        out = np.empty_like(face)
        for channel in range(3):
            source_cdf = _cdf(face[..., channel][inside])
            target_cdf = _cdf(reference[..., channel][inside])
            lookup = np.interp(source_cdf, target_cdf, np.arange(256)).round().astype(np.uint8)
            out[..., channel] = lookup[face[..., channel]]
        return out
    # The statistics and the local correction from quarter-size copies (the conversion to
    # L*a*b* and the Gaussians are the cost here; the correction is smooth by construction).
    height, width = face.shape[:2]
    small = (max(1, width // 4), max(1, height // 4))
    shrink = small[0] / width
    region = _skin_within(cv2.resize(mask.astype(np.float32), small, interpolation=cv2.INTER_AREA) > 0.5,
                          None if landmarks is None else np.asarray(landmarks) * shrink)
    if not region.any():
        return face
    face_small, reference_small = (cv2.resize(image, small, interpolation=cv2.INTER_AREA)
                                   for image in (face, reference))
    face_mean, face_std, ref_mean, ref_std = (
        v.ravel() for image in (face_small, reference_small)
        for v in cv2.meanStdDev(cv2.cvtColor(image, cv2.COLOR_RGB2LAB), mask=region.astype(np.uint8)))
    scale = np.clip(ref_std / np.maximum(face_std, 1e-3), 0.5, 1.0)
    # Per channel: lab * scale + (ref_mean - face_mean * scale), saturated to uint8.
    affine = np.concatenate([np.diag(scale), (ref_mean - face_mean * scale)[:, None]], axis=1)
    matched = cv2.cvtColor(cv2.transform(cv2.cvtColor(face, cv2.COLOR_RGB2LAB), affine), cv2.COLOR_LAB2RGB)
    if mode == "lab" or landmarks is None:
        return matched
    sigma = max(0.5, LOCAL_SIGMA * float(expression.eye_span(landmarks)) * shrink)
    matched_small = cv2.cvtColor(cv2.transform(cv2.cvtColor(face_small, cv2.COLOR_RGB2LAB), affine),
                                 cv2.COLOR_LAB2RGB)
    weight = region.astype(np.float32)
    correction = (local_mean(reference_small.astype(np.float32), weight, sigma)
                  - local_mean(matched_small.astype(np.float32), weight, sigma))
    correction = cv2.resize(correction, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(matched + correction + 0.5, 0, 255).astype(np.uint8)


def _skin_within(inside: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
    """The skin (`masks.skin_mask`) within `inside`, or all of `inside` where there are no
    landmarks or too little skin."""
    if landmarks is None:
        return inside
    skin = inside & (masks.skin_mask(landmarks, inside.shape) > 127)
    return skin if skin.sum() >= max(4, inside.sum() // 20) else inside


def local_mean(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """The Gaussian-weighted mean of float32 `image` ([H, W] or [H, W, C]) around each pixel,
    counting each pixel by `weight` ([H, W]; normalised convolution): the colour of the
    weighted region near every place, carried smoothly past its edges into the rest."""
    spread = cv2.GaussianBlur(weight, (0, 0), sigma)
    total = cv2.GaussianBlur(image * (weight[..., None] if image.ndim == 3 else weight), (0, 0), sigma)
    spread = np.maximum(spread, 1e-6)
    return total / (spread[..., None] if image.ndim == 3 else spread)


def _cdf(values: np.ndarray) -> np.ndarray:
    counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    return np.cumsum(counts) / max(counts.sum(), 1.0)


def shape_mask(mask: np.ndarray, erode: float, feather: float) -> np.ndarray:
    """The model's mask [S, S] in [0, 1], shrunk by `erode` and softened by a Gaussian of
    `feather` (both as fractions of the crop size), so no seam shows at its edge."""
    size = mask.shape[0]
    mask = mask.astype(np.float32)
    radius = int(round(erode * size))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(mask, kernel)
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather * size)
    return mask


def detail_weight(landmarks: np.ndarray, size: int) -> np.ndarray:
    """float32 [size, size] in [0, 1]: where the frame's own fine detail may show through the swap,
    for a face's crop-space landmarks: its skin (`masks.skin_mask`: the hull without the eyes,
    brows, nostrils and mouth, which carry who someone is and what they express), edges softened."""
    weight = masks.skin_mask(landmarks, size).astype(np.float32) / 255.0
    return cv2.GaussianBlur(weight, (0, 0), max(0.5, 0.06 * float(expression.eye_span(landmarks))))


def detail_sigma(framing) -> float:
    """The scale, in crop pixels, below which a swap's detail comes from the frame
    (`paste`'s `detail_sigma`): one pixel of the network's view, the finest thing it draws."""
    return framing.crop_size * framing.coverage / framing.resolution


def paste(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
          mode: str = "alpha", detail: np.ndarray | None = None, detail_sigma: float = 0.0) -> None:
    """Blends the aligned `face` (uint8 [S, S, 3]) with weights `mask` ([S, S] in [0, 1]) into
    `frame` in place, through the inverse of the frame-to-crop `matrix`. With `detail` ([S, S]
    weights in [0, 1]), the result's detail finer than a Gaussian of `detail_sigma` crop pixels
    is replaced there by the frame's own (`detail_weight`): what a network working at a lower
    resolution than the frame cannot draw (skin texture, pores) comes from the frame."""
    size = face.shape[0]
    inverse = align.invert(matrix)
    corners = align.transform_points(inverse, np.array([[0, 0], [size, 0], [0, size], [size, size]]))
    height, width = frame.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int).clip(0, [width, height])
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int).clip(0, [width, height])
    if x1 <= x0 or y1 <= y0:
        return
    shifted = inverse.copy()
    shifted[:, 2] -= (x0, y0)
    region = (int(x1 - x0), int(y1 - y0))
    placed = cv2.warpAffine(face, shifted, region, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(mask, shifted, region, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    roi = frame[y0:y1, x0:x1]
    original = roi.copy() if detail is not None and detail_sigma > 0 else None
    if not (mode == "seamless" and _seamless(frame, placed, weight, x0, y0)):
        roi[:] = cv2.blendLinear(placed, roi, weight, 1.0 - weight)
    if original is not None:
        where = cv2.warpAffine(detail.astype(np.float32), shifted, region, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)
        sigma = detail_sigma / np.sqrt(abs(np.linalg.det(matrix[:, :2])))  # crop -> frame pixels
        fine = [image.astype(np.float32) - cv2.GaussianBlur(image, (0, 0), sigma).astype(np.float32)
                for image in (original, roi)]
        roi[:] = np.clip(roi + where[..., None] * (fine[0] - fine[1]) + 0.5, 0, 255).astype(np.uint8)


def _seamless(frame, placed, weight, x0, y0) -> bool:
    """Poisson blending (cv2.seamlessClone) of the mask's inside; False where OpenCV cannot
    (a face cut by the frame's edge), so the caller falls back to alpha blending."""
    binary = (weight > 0.5).astype(np.uint8) * 255
    points = cv2.findNonZero(binary)
    if points is None:
        return True
    bx, by, bw, bh = cv2.boundingRect(points)
    height, width = frame.shape[:2]
    if x0 + bx < 1 or y0 + by < 1 or x0 + bx + bw >= width - 1 or y0 + by + bh >= height - 1:
        return False
    centre = (int(x0 + bx + bw // 2), int(y0 + by + bh // 2))
    try:
        frame[:] = cv2.seamlessClone(placed, frame, binary, centre, cv2.NORMAL_CLONE)
    except cv2.error:
        return False
    return True


def watermark(frame: np.ndarray, text: str) -> None:
    """A visible label in the frame's bottom-left corner, white on a dark box, in place."""
    height = frame.shape[0]
    scale = max(0.35, height / 900)
    thickness = max(1, int(round(scale * 2)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = int(6 * scale) + 2
    top = height - h - base - 2 * margin
    cv2.rectangle(frame, (0, max(0, top)), (w + 2 * margin, height), (0, 0, 0), -1)
    cv2.putText(frame, text, (margin, height - base - margin), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thickness, cv2.LINE_AA)
