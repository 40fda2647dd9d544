"""How a face is framed, from the video frame to the network and back: the one definition.

Two maps, both similarities:
- frame -> aligned crop (`crop_matrix`): the least-squares fit of the face's landmarks onto
  the alignment template (`faces/align.py`), placed in a `crop_size` square with `padding` of
  the crop on each side around the inner face. Extract writes these crops; convert, evaluate
  and detect cut faces from frames the same way.
- aligned crop -> the network's view (`view_from_crop`): the centre `coverage` of the crop,
  scaled to the model's `resolution`. Training reads its faces through it (`to_view`, OpenCV),
  the exported graph maps crops to the view and the decoder's output back onto the crop
  through it (`tf_to_view`, `tf_blend`, TensorFlow). Both come from the one 2x3 matrix, and a
  test holds them to the same pixels.

A `Framing` without `coverage` and `resolution` is a crop's framing alone (what extract
knows); a model's framing has all four, and travels in its run record and its export.
"""

import dataclasses

import cv2
import numpy as np

from faceswap_tf.errors import UserError
from faceswap_tf.faces import align


@dataclasses.dataclass(frozen=True)
class Framing:
    crop_size: int
    padding: float
    coverage: float | None = None  # centre part of the crop the network sees
    resolution: int | None = None  # the network's side in pixels
    template: str = align.TEMPLATE_NAME

    def __post_init__(self):
        if not 16 <= self.crop_size <= 2048:
            raise UserError(f"crop size {self.crop_size}: must be between 16 and 2048 pixels")
        if not 0.0 <= self.padding < 0.5:
            raise UserError(f"padding {self.padding}: must be in [0, 0.5)")
        if self.coverage is not None and not 0.3 <= self.coverage <= 1.0:
            raise UserError(f"--coverage={self.coverage}: must be in [0.3, 1]")
        if (self.coverage is None) != (self.resolution is None):
            raise ValueError("a model's framing needs both coverage and resolution")

    def with_view(self, coverage: float, resolution: int) -> "Framing":
        return dataclasses.replace(self, coverage=coverage, resolution=resolution)

    # --- frame <-> aligned crop ---------------------------------------------------------

    def crop_matrix(self, landmarks: np.ndarray, template_points: np.ndarray | None = None,
                    weights: np.ndarray | None = None) -> np.ndarray:
        """The 2x3 frame -> crop matrix of a face's 68 frame-pixel landmarks (template and fit
        weights: the project's own unless given, as an exported model carries them)."""
        return align.alignment_matrix(landmarks, self.crop_size, self.padding, template_points, weights)

    def crop(self, frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The aligned crop of `frame` for a frame -> crop `matrix`."""
        return align.warp_face(frame, matrix, self.crop_size)

    def crop_outline(self, matrix: np.ndarray) -> np.ndarray:
        """[4, 2] frame pixels of the crop's corners, for a frame -> crop `matrix`."""
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64) * self.crop_size
        return align.transform_points(align.invert(matrix), corners)

    # --- aligned crop <-> the network's view ---------------------------------------------

    @property
    def view_from_crop(self) -> np.ndarray:
        """2x3 matrix from crop pixels to view pixels."""
        if self.resolution is None:
            raise ValueError("a crop's framing alone has no view: give coverage and resolution")
        margin = self.crop_size * (1.0 - self.coverage) / 2.0
        scale = self.resolution / (self.crop_size * self.coverage)
        return np.array([[scale, 0.0, -margin * scale], [0.0, scale, -margin * scale]])

    @property
    def crop_from_view(self) -> np.ndarray:
        return align.invert(self.view_from_crop)

    def to_view(self, crop: np.ndarray) -> np.ndarray:
        """An aligned crop (uint8 [S, S, C]) at the network's resolution, area-averaged."""
        return cv2.warpAffine(crop, self.view_from_crop, (self.resolution, self.resolution),
                              flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101)

    def from_view(self, view: np.ndarray, reflect: bool = False) -> np.ndarray:
        """An image at the network's resolution (its output, say) back on the crop, bilinear:
        0 beyond the view, as `tf_blend` leaves a swap, or with `reflect` the view's edge mirrored."""
        border = cv2.BORDER_REFLECT_101 if reflect else cv2.BORDER_CONSTANT
        return cv2.warpAffine(view, self.crop_from_view, (self.crop_size, self.crop_size),
                              flags=cv2.INTER_LINEAR, borderMode=border)

    def points_to_view(self, points: np.ndarray) -> np.ndarray:
        return align.transform_points(self.view_from_crop, points)

    def tf_to_view(self, crops):
        """uint8 [N, S, S, 3] crops -> float32 [N, R, R, 3] in [-1, 1], the network's input
        (bilinear, in the graph)."""
        import tensorflow as tf

        flat = self.crop_from_view
        transform = tf.constant([[*flat[0], *flat[1], 0.0, 0.0]], tf.float32)
        view = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(crops, tf.float32), transforms=transform,
            output_shape=tf.constant([self.resolution, self.resolution], tf.int32),
            fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
        return view / 127.5 - 1.0

    def tf_blend(self, crops, rgb, mask) -> dict:
        """The network's rgb [-1, 1] and mask [0, 1] at R, mapped onto the crops and blended;
        returns `swapped` uint8, `mask` float32 and `rgb` uint8, all at S (mask 0 outside the
        view)."""
        import tensorflow as tf

        both = tf.concat([(tf.cast(rgb, tf.float32) + 1.0) * 127.5, tf.cast(mask, tf.float32)], axis=-1)
        # crop_and_resize samples output pixel i at box_start * (R - 1) + i * step, the same
        # bilinear map as view_from_crop inverted, at a third of ImageProjectiveTransform's cost.
        scale, shift = self.view_from_crop[0, 0], self.view_from_crop[0, 2]
        start = shift / (self.resolution - 1)
        end = (scale * (self.crop_size - 1) + shift) / (self.resolution - 1)
        count = tf.shape(both)[0]
        boxes = tf.tile(tf.constant([[start, start, end, end]], tf.float32), [count, 1])
        both = tf.image.crop_and_resize(both, boxes, tf.range(count), [self.crop_size, self.crop_size],
                                        extrapolation_value=0.0)
        rgb, mask = both[..., :3], both[..., 3:]
        crops = tf.cast(crops, tf.float32)
        return {"swapped": to_uint8(crops + mask * (rgb - crops)), "mask": mask, "rgb": to_uint8(rgb)}

    # --- as records carry it -------------------------------------------------------------

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document: dict, where: str) -> "Framing":
        try:
            return cls(crop_size=int(document["crop_size"]), padding=float(document["padding"]),
                       coverage=None if document.get("coverage") is None else float(document["coverage"]),
                       resolution=None if document.get("resolution") is None else int(document["resolution"]),
                       template=str(document["template"]))
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{where}: framing: expected crop_size, padding, coverage, resolution and "
                            f"template ({error})") from None


def to_uint8(values):
    """Float pixel values (a TensorFlow tensor) rounded and saturated to uint8."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(values), 0.0, 255.0), tf.uint8)
