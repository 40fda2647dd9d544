"""The detector network: a Keras functional classifier of aligned face crops, trained from
scratch, with an optional second head that predicts the blend mask (where a face was
replaced). The mask head makes the network look at the blend boundary and the face against
its surroundings, which other tools' swaps share, rather than at one generator's texture."""

import dataclasses

import keras
import numpy as np
from keras import layers

from faceswap_tf.errors import UserError

VIEWS = ("rgb", "high_pass")


@dataclasses.dataclass(frozen=True)
class DetectorModelConfig:
    resolution: int = 128  # the view's side in pixels
    coverage: float = 1.0  # of the aligned crop: all of it, the blend boundary and the frame around the face
    width: int = 32  # filters of the first block, doubled per block
    blocks: int = 4  # each halves the side
    mask_head: bool = True
    members: int = 1  # networks of this shape trained side by side; the detector's logit is their mean
    view: str = "rgb"  # what the first layer reads: the view's colours, or "high_pass": its detail alone

    def __post_init__(self):
        if self.resolution % (2 ** self.blocks) or self.resolution < 2 ** (self.blocks + 1):
            raise UserError(f"--resolution={self.resolution}: must be a multiple of {2 ** self.blocks} "
                            f"(2 to the power of --blocks={self.blocks}), and at least twice that")
        if self.width < 4:
            raise UserError(f"--width={self.width}: must be at least 4")
        if self.blocks < 2:
            raise UserError(f"--blocks={self.blocks}: must be at least 2")
        if self.members < 1:
            raise UserError(f"--members={self.members}: must be at least 1")
        if self.view not in VIEWS:
            raise UserError(f"--view={self.view}: choose {', '.join(VIEWS)}")

    @property
    def mask_side(self) -> int:
        return self.resolution // 4


def gaussian_blur(images, sigma, radius: int, mode: str = "symmetric"):
    """Separable Gaussian blur of float images, [N, H, W, C] or one [H, W, C]: sigma in pixels (a
    number or a scalar tensor, drawn at random in the augmentations), `radius` taps either side
    of the centre, the borders padded by `mode` (keras.ops.pad's: "symmetric" repeats the edge
    pixel, "reflect" does not, as OpenCV's default border). The one blur of the detect stage:
    the high-pass view, the augmentations' blur and the self-blended fakes' softening and
    feathering."""
    batch = images if len(images.shape) == 4 else images[None]
    offsets = keras.ops.arange(-radius, radius + 1, dtype="float32")
    taps = keras.ops.exp(-0.5 * keras.ops.square(offsets / keras.ops.cast(sigma, "float32")))
    taps = keras.ops.cast(taps / keras.ops.sum(taps), batch.dtype)
    channels = keras.ops.shape(batch)[-1]
    for shape in ((2 * radius + 1, 1, 1, 1), (1, 2 * radius + 1, 1, 1)):  # rows, then columns
        kernel = keras.ops.tile(keras.ops.reshape(taps, shape), (1, 1, channels, 1))
        padded = keras.ops.pad(batch, [[0, 0], [shape[0] // 2] * 2, [shape[1] // 2] * 2, [0, 0]], mode=mode)
        batch = keras.ops.depthwise_conv(padded, kernel, padding="valid")
    return batch if len(images.shape) == 4 else batch[0]


class HighPass(layers.Layer):
    """The view less its Gaussian blur (sigma `sigma` pixels, reflected at the borders), per
    channel, times `gain`: the detail a face swap changes (a face drawn at a lower resolution
    than the frame around it, the blend's seam, recompression) without the shapes and colours
    that tell who a person is or how his mouth stands. A fixed filter, no weights."""

    def __init__(self, sigma: float = 1.5, gain: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        self.sigma, self.gain = sigma, gain

    def call(self, inputs):
        blurred = gaussian_blur(inputs, self.sigma, int(np.ceil(3 * self.sigma)), mode="reflect")
        return (inputs - blurred) * self.gain

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "gain": self.gain}


def _block(x, filters: int, name: str):
    # Group normalisation: the same in training and at inference, where batch statistics of a
    # short run (or of one face served alone) would not be.
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.GroupNormalization(min(8, filters), name=f"{name}_norm")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"{name}_down")(x)
    x = layers.GroupNormalization(min(8, filters), name=f"{name}_down_norm")(x)
    return layers.ReLU(name=f"{name}_down_relu")(x)


def build_detector(cfg: DetectorModelConfig) -> keras.Model:
    """faces float32 [N, R, R, 3] in [0, 1] -> {"logit": [N, 1], "mask": [N, R/4, R/4, 1] logits,
    "features": [N, F] the pooled features the logit is read from (for `build_identity_head`)}.

    With `members` > 1, that many networks of this shape side by side (layers `member0`...,
    each with its own initial weights): the logit and the mask are the means of theirs (an
    ensemble: the mean outvotes a member that learnt what does not carry to strangers; it did
    not remove the offset strangers' real faces share across members, README, Detect),
    "features" is left out. `members_of` gives the members, each trained on batches of its own."""
    if cfg.members == 1:
        return _single(cfg, "detector")
    faces = keras.Input((cfg.resolution, cfg.resolution, 3), name="faces")
    members = [_single(cfg, f"member{i}") for i in range(cfg.members)]
    outs = [member(faces) for member in members]
    outputs = {"logit": layers.Average(dtype="float32", name="logit")([o["logit"] for o in outs])}
    if cfg.mask_head:
        outputs["mask"] = layers.Average(dtype="float32", name="mask")([o["mask"] for o in outs])
    return keras.Model(faces, outputs, name="detector")


def members_of(network: keras.Model) -> list[keras.Model]:
    """The networks of `build_detector` that are trained: the network itself, or its members."""
    found = [layer for layer in network.layers if isinstance(layer, keras.Model)]
    return found or [network]


def _single(cfg: DetectorModelConfig, name: str) -> keras.Model:
    faces = keras.Input((cfg.resolution, cfg.resolution, 3), name="faces")  # (R, R, 3)
    x = layers.Rescaling(2.0, offset=-1.0, name="to_signed")(faces)
    if cfg.view == "high_pass":
        x = HighPass(name="high_pass")(x)
    outputs = {}
    for i in range(cfg.blocks):
        x = _block(x, cfg.width * 2 ** i, f"block{i}")  # (R / 2^(i+1), R / 2^(i+1), width * 2^i)
        if i == 1 and cfg.mask_head:
            m = layers.Conv2D(cfg.width, 3, padding="same", activation="relu", name="mask_conv")(x)
            outputs["mask"] = layers.Conv2D(1, 1, dtype="float32", name="mask")(m)  # (R/4, R/4, 1)
    pooled = layers.Concatenate(name="pooled")([layers.GlobalAveragePooling2D(name="gap")(x),
                                                layers.GlobalMaxPooling2D(name="gmp")(x)])
    outputs["features"] = layers.Activation("linear", dtype="float32", name="features")(pooled)  # (F,)
    pooled = layers.Dropout(0.3, name="dropout")(pooled)
    outputs["logit"] = layers.Dense(1, dtype="float32", name="logit")(pooled)  # (1,)
    return keras.Model(faces, outputs, name=name)


def build_identity_head(features: int, people: int) -> keras.Model:
    """The detector's pooled features [N, F] -> logits [N, people]: which training person's frame
    a face was cut from. Trained beside the detector, whose features are in turn trained to leave
    it guessing (trainer, `identity_adversary`), so that a stranger's real face is not scored by
    how much he resembles someone the detector knows; never exported."""
    inputs = keras.Input((features,), name="features")
    x = layers.Dense(128, activation="relu", name="identity_hidden")(inputs)
    return keras.Model(inputs, layers.Dense(people, dtype="float32", name="identity")(x), name="identity_head")
