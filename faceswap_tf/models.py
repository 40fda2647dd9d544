"""Keras functional builders for the faceswap-GAN networks.

One encoder is shared by both people; each person has a decoder giving RGB (tanh, in [-1, 1])
and an alpha mask (sigmoid, in [0, 1]), and a PatchGAN discriminator. Shapes below are for
the 64 px model with width 1.0; other resolutions add down- and upscaling blocks. With a core
of half the resolution (`core_resolution`) the networks keep the layers of the half-size
model: the face is folded into half the side at the input (every pixel kept, as channels)
and the decoder's last layer draws each core pixel's 2x2 output pixels.
"""

import contextlib
import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from faceswap_tf.errors import UserError

RESOLUTIONS = (64, 128, 256)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    resolution: int = 64
    width: float = 1.0  # multiplies every layer's filter count
    code_size: int = 1024  # dense bottleneck units
    self_attention: bool = True
    spectral_norm: bool = True  # in the discriminators
    # The side the encoder's and decoder's inner layers work at; None: `resolution`. Half of it:
    # the face comes in and goes out at `resolution`, folded into the core's side at the first
    # layer (space to depth) and unfolded at the last (sub-pixel), as DeepFaceLab's "-d" models.
    core_resolution: int | None = None

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {self.resolution}")
        if self.width <= 0:
            raise ValueError(f"width must be positive, not {self.width}")
        if self.core_resolution not in (None, self.resolution, self.resolution // 2):
            raise UserError(f"--core_resolution={self.core_resolution}: must be --resolution "
                            f"({self.resolution}) or half of it")

    @property
    def core(self) -> int:
        """The side of the network's inner layers."""
        return self.core_resolution or self.resolution

    @property
    def fold(self) -> int:
        """How many pixels a side of the core's one pixel stands for at the input and output: 1 or 2."""
        return self.resolution // self.core

    def filters(self, base: int) -> int:
        return max(8, int(round(base * self.width)))

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return (8, 8, self.filters(512))


@keras.saving.register_keras_serializable(package="faceswap_tf")
class PixelShuffle(layers.Layer):
    """Sub-pixel upscaling: [H, W, C * r^2] -> [H * r, W * r, C] (Shi et al., 2016)."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="faceswap_tf")
class SpaceToDepth(layers.Layer):
    """The inverse of PixelShuffle: [H, W, C] -> [H / r, W / r, C * r^2], every pixel kept."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="faceswap_tf")
class SelfAttention(layers.Layer):
    """SAGAN self-attention (Zhang et al., 2019): x + gamma * softmax(f(x) g(x)^T) h(x).

    gamma starts at 0, so the block starts as the identity and learns how much to attend.
    """

    def build(self, input_shape):
        channels = input_shape[-1]
        self.query = layers.Conv2D(max(1, channels // 8), 1, name="query")
        # No bias: it adds the same amount to every logit of a row, which softmax ignores.
        self.key = layers.Conv2D(max(1, channels // 8), 1, use_bias=False, name="key")
        self.value = layers.Conv2D(channels, 1, name="value")
        for conv in (self.query, self.key, self.value):
            conv.build(input_shape)
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def call(self, inputs):
        shape = tf.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        q = tf.reshape(self.query(inputs), [batch, height * width, -1])
        k = tf.reshape(self.key(inputs), [batch, height * width, -1])
        v = tf.reshape(self.value(inputs), [batch, height * width, -1])
        attention = tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1)
        out = tf.reshape(tf.matmul(attention, v), tf.shape(inputs))
        return inputs + tf.cast(self.gamma, out.dtype) * out


_PLAIN = [False]  # set by plain_convolutions()


@contextlib.contextmanager
def plain_convolutions():
    """Within it, the layers below that compute a convolution another way (PatchConv2D,
    OutputConv2D) compute it as a plain convolution: the arithmetic the model defines, for
    counting its FLOPs (TensorFlow's count of a folded convolution includes its zero taps).
    It applies to what is traced within it."""
    _PLAIN[0] = True
    try:
        yield
    finally:
        _PLAIN[0] = False


@keras.saving.register_keras_serializable(package="faceswap_tf")
class PatchConv2D(layers.Conv2D):
    """Conv2D ("same" padding) computed as im2col (tf.image.extract_patches) and one matmul:
    the same variables and result as Conv2D, but oneDNN's bf16 convolution and above all its
    weight gradient run several times slower than the matmul on tiny feature maps with many
    channels (the 4x4, 512 -> 1024 upscale; the strided 16 -> 8 and 8 -> 4 encoder blocks,
    whose weight gradients ran at 115 and 62 GFLOP/s against the reference's 450)."""

    def convolution_op(self, inputs, kernel):
        if _PLAIN[0]:
            return super().convolution_op(inputs, kernel)
        rows, cols, channels, filters = kernel.shape
        strides = [1, *self.strides, 1]
        patches = tf.image.extract_patches(inputs, [1, rows, cols, 1], strides, [1, 1, 1, 1], "SAME")
        out = tf.matmul(tf.reshape(patches, [-1, rows * cols * channels]),
                        tf.reshape(kernel, [rows * cols * channels, filters]))
        shape = tf.shape(patches)
        return tf.reshape(out, [shape[0], shape[1], shape[2], filters])


def _fold_taps(size: int) -> np.ndarray:
    """int [T, T, 2, 2, 2, 2]: for the folded kernel's tap (ty, tx), input phase (qy, qx) and
    output phase (py, px), the flat index (dy * size + dx) of the size x size kernel's tap it
    is, or size * size where it is none (a zero)."""
    half = (size - 1) // 2
    taps = half + 1 + half % 2  # odd, and wide enough: (taps - 1) / 2 >= half / 2 on each side
    t, q, p = np.arange(taps), np.arange(2), np.arange(2)
    d = 2 * (t[:, None, None] - (taps - 1) // 2) + q[None, :, None] - p[None, None, :] + half  # [t, q, p]
    dy = d[:, None, :, None, :, None]
    dx = d[None, :, None, :, None, :]
    inside = (dy >= 0) & (dy < size) & (dx >= 0) & (dx < size)
    return np.where(inside, dy * size + dx, size * size)


def folded_convolution(inputs, kernel):
    """A stride-1 "same" convolution with an odd square kernel, computed on the input folded
    2x2 into channels (space to depth) with a kernel of 2x2 phases built from the same weights,
    and unfolded (depth to space): the same result. oneDNN's kernels handle 4 times the input and
    output channels on a quarter of the pixels far better when the outputs are few (the 5x5
    rgb and mask convolutions, 3 and 1 outputs: 17-60 GFLOP/s plain), though the folded kernel
    has 1.44 times the multiplications (zeros where a phase's taps fall outside)."""
    size, _, channels, filters = kernel.shape
    taps = _fold_taps(size)
    flat = tf.concat([tf.reshape(kernel, [size * size, channels, filters]),
                      tf.zeros([1, channels, filters], kernel.dtype)], axis=0)
    folded = tf.transpose(tf.gather(flat, taps), [0, 1, 2, 3, 6, 4, 5, 7])  # ty tx qy qx c py px o
    folded = tf.reshape(folded, [taps.shape[0], taps.shape[1], 4 * channels, 4 * filters])
    out = tf.nn.conv2d(tf.nn.space_to_depth(inputs, 2), folded, 1, "SAME")
    return tf.nn.depth_to_space(out, 2)


@keras.saving.register_keras_serializable(package="faceswap_tf")
class LeakyReLU(layers.LeakyReLU):
    """keras's LeakyReLU (the same function and gradient) with the gradient taken from the
    output instead of the input: y > 0 exactly where x > 0, so the two are equal. TensorFlow's
    own gradient reads the input, which keeps the tensor before the activation alive and
    stops grappler's remapper from fusing conv + bias + activation in a training graph; after
    a residual add it is worse: the remapper fuses conv + bias + add + activation, removes the
    add that LeakyReluGrad still reads and fails ("Mutation::Apply error: fanout ... exist
    for missing node"), and a failed remapper applies none of its fusions to the graph."""

    def call(self, inputs):
        return _leaky_relu(inputs, self.negative_slope)


def _leaky_relu(x, alpha):
    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, alpha)
        return y, lambda dy: tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=alpha)

    return forward(x)


@keras.saving.register_keras_serializable(package="faceswap_tf")
class OutputConv2D(layers.Conv2D):
    """A float32 Conv2D (bias, activation and output in float32, as the final layers under a
    mixed-precision policy should be) whose convolution runs in the policy's compute dtype
    when it was built under one, as every other layer's does: oneDNN's float32 convolution
    with 1 or 3 output channels runs at a fraction of its bfloat16 speed, and the two output
    convolutions took about a fifth of the 64 px bfloat16 step. The output then carries the
    bfloat16 rounding of the convolution (measured: rgb within 0.008 of the float32 one)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_dtype = keras.mixed_precision.global_policy().compute_dtype
        self._convert_input_args = False  # the input stays in the compute dtype

    def convolution_op(self, inputs, kernel):
        inputs, kernel = tf.cast(inputs, self.conv_dtype), tf.cast(kernel, self.conv_dtype)
        if self._foldable(inputs, kernel):
            out = folded_convolution(inputs, kernel)
        else:
            out = super().convolution_op(inputs, kernel)
        return tf.cast(out, self.compute_dtype)

    def _foldable(self, inputs, kernel) -> bool:
        rows, cols = kernel.shape[:2]
        height, width = inputs.shape[1:3]
        return (not _PLAIN[0] and rows == cols and rows % 2 == 1 and rows >= 5 and self.padding == "same"
                and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and height is not None and width is not None and height % 2 == 0 and width % 2 == 0)


def _conv_block(x, filters, name):
    conv = PatchConv2D if x.shape[1] <= 16 else layers.Conv2D
    x = conv(filters, 3, strides=2, padding="same", name=f"{name}_conv")(x)
    return LeakyReLU(0.1, name=f"{name}_act")(x)


def _upscale(x, filters, name):
    conv = PatchConv2D if x.shape[1] <= 4 else layers.Conv2D
    x = conv(filters * 4, 3, padding="same", name=f"{name}_conv")(x)
    x = LeakyReLU(0.1, name=f"{name}_act")(x)
    return PixelShuffle(name=f"{name}_shuffle")(x)


def _res_block(x, filters, name):
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    y = LeakyReLU(0.2, name=f"{name}_act1")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    y = layers.Add(name=f"{name}_add")([x, y])
    return LeakyReLU(0.2, name=f"{name}_act2")(y)


def _image_input(cfg: ModelConfig):
    """The network's face input at the resolution, and that face as its first layer takes it:
    folded into the core's side when the core is smaller (channels times fold^2)."""
    image = keras.Input((cfg.resolution, cfg.resolution, 3), name="image")
    return image, SpaceToDepth(cfg.fold, name="fold")(image) if cfg.fold > 1 else image


def build_encoder(cfg: ModelConfig) -> keras.Model:
    image, x = _image_input(cfg)  # (64, 64, 3) in [-1, 1]
    x = layers.Conv2D(cfg.filters(64), 3, padding="same", name="stem")(x)  # (64, 64, 64)
    downs = int(math.log2(cfg.core // 4))
    for i in range(downs):  # 64 -> 32 -> 16 -> 8 -> 4, filters 128 .. 1024
        x = _conv_block(x, cfg.filters(min(1024, 128 * 2**i)), f"down{i}")
        if cfg.self_attention and x.shape[1] in (16, 8):
            x = SelfAttention(name=f"attn_down{i}")(x)
    x = layers.Flatten(name="flatten")(x)  # (16384,)
    x = layers.Dense(cfg.code_size, name="bottleneck")(x)  # (1024,)
    x = layers.Dense(4 * 4 * cfg.filters(1024), name="expand")(x)
    x = layers.Reshape((4, 4, cfg.filters(1024)), name="reshape")(x)  # (4, 4, 1024)
    code = _upscale(x, cfg.filters(512), "up")  # (8, 8, 512)
    return keras.Model(image, code, name="encoder")


def build_decoder(cfg: ModelConfig, side: str) -> keras.Model:
    code = keras.Input(cfg.code_shape, name="code")  # (8, 8, 512)
    x = code
    ups = int(math.log2(cfg.core // 8))
    for i in range(ups):  # 8 -> 16 -> 32 -> 64, filters 256, 128, 64
        x = _upscale(x, cfg.filters(max(64, 256 // 2**i)), f"up{i}")
        if cfg.self_attention and x.shape[1] in (16, 32):
            x = SelfAttention(name=f"attn_up{i}")(x)
    x = _res_block(x, x.shape[-1], "res")  # (64, 64, 64)
    # With a core of half the resolution each core pixel draws fold x fold output pixels (the
    # activations are elementwise, so they commute with the unfolding).
    channels = cfg.fold**2
    rgb = OutputConv2D(3 * channels, 5, padding="same", activation="tanh", dtype="float32", name="rgb")(x)
    mask = OutputConv2D(channels, 5, padding="same", activation="sigmoid", dtype="float32", name="mask")(x)
    if cfg.fold > 1:
        rgb = PixelShuffle(cfg.fold, dtype="float32", name="rgb_unfold")(rgb)
        mask = PixelShuffle(cfg.fold, dtype="float32", name="mask_unfold")(mask)
    return keras.Model(code, {"rgb": rgb, "mask": mask}, name=f"decoder_{side}")


def build_code_discriminator(cfg: ModelConfig) -> keras.Model:
    """Which person an encoder code came from: one logit per cell of a (4, 4) grid over the
    (8, 8) code (after DeepFaceLab's "true face" discriminator). Trained against it, the shared
    encoder gives both people's faces codes of one distribution, so a decoder fed the other
    person's code (a swap) meets codes like the ones it learnt to draw."""
    code = keras.Input(cfg.code_shape, name="code")  # (8, 8, 512)
    x = layers.Conv2D(cfg.filters(256), 3, padding="same", name="c0")(code)
    x = LeakyReLU(0.2, name="c0_act")(x)
    x = layers.Conv2D(cfg.filters(256), 3, strides=2, padding="same", name="c1")(x)  # (4, 4, 256)
    x = LeakyReLU(0.2, name="c1_act")(x)
    logits = layers.Conv2D(1, 3, padding="same", name="logits")(x)
    logits = layers.Activation("linear", dtype="float32", name="code_logits")(logits)
    return keras.Model(code, logits, name="code_discriminator")


def build_expression_regressor(cfg: ModelConfig, outputs: int = 4) -> keras.Model:
    """How open a face's mouth and eyes are and where its head turns (`data.EXPRESSION_MEASURES`,
    each in units of its spread over the training faces), read from a face in the network's
    view. Trained on both people's real faces, it tells the step how far a swap's expression
    and pose are from the face it was made from, which no reconstruction loss sees."""
    image, x = _image_input(cfg)
    for i in range(int(math.log2(cfg.core // 4))):  # 64 -> 32 -> 16 -> 8 -> 4, filters 64 .. 512 x width
        x = layers.Conv2D(cfg.filters(min(512, 64 * 2**i)), 4, strides=2, padding="same", name=f"e{i}")(x)
        x = LeakyReLU(0.2, name=f"e{i}_act")(x)
    x = layers.Flatten(name="e_flatten")(x)
    x = layers.Dense(outputs, name="measures")(x)
    measures = layers.Activation("linear", dtype="float32", name="measures_out")(x)
    return keras.Model(image, measures, name="expression_regressor")


def build_discriminator(cfg: ModelConfig, side: str) -> keras.Model:
    """PatchGAN on the face alone: one logit per patch of an (8, 8) grid at 64 px."""

    def conv(filters, kernel, strides, name):
        layer = layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)
        return layers.SpectralNormalization(layer, name=f"{name}_sn") if cfg.spectral_norm else layer

    image, x = _image_input(cfg)  # (64, 64, 3)
    for i in range(int(math.log2(cfg.core // 8))):  # 64 -> 32 -> 16 -> 8, filters 64, 128, 256
        x = conv(cfg.filters(min(512, 64 * 2**i)), 4, 2, f"down{i}")(x)
        x = LeakyReLU(0.2, name=f"down{i}_act")(x)
    if cfg.self_attention:
        x = SelfAttention(name="attn")(x)
    logits = conv(1, 4, 1, "logits")(x)  # (8, 8, 1)
    logits = layers.Activation("linear", dtype="float32", name="patch_logits")(logits)
    return keras.Model(image, logits, name=f"discriminator_{side}")
