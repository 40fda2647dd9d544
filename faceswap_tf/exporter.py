"""The export stage: a trained swapper as a numbered SavedModel version for TF Serving.

`export()` rebuilds the encoder and one decoder from `model_dir/config.json`, restores them
from the newest checkpoint, wraps them in a `Swapper` module and saves it to
`export_dir/NAME/VERSION/` (written in a hidden temporary folder, then renamed, so TF Serving
never sees a partial version). Its signatures, callable with TensorFlow alone:

- `serving_default`: `faces` uint8 [N, S, S, 3], aligned RGB crops framed as the training
  faces were (S = their crop size) -> `swapped` uint8 [N, S, S, 3] (the mask-blended
  composite), `mask` float32 [N, S, S, 1] in [0, 1] and `rgb` uint8 [N, S, S, 3] (the raw
  decoder output). The network sees the centre `coverage` of the crop at its resolution; its
  RGB and mask are mapped back onto the crop and blended there, so pixels the mask leaves
  alone keep the crop's full resolution. Outside the coverage the mask is 0.
- `swap_image_bytes`: `image_bytes` string [N] (PNG or JPEG crops of S x S) ->
  `swapped_bytes` and `mask_bytes` string [N] (PNG). TF Serving's REST API carries these as
  base64 (`{"b64": ...}`), the `_bytes` suffix telling it to.
- `metadata`: `request` int32 scalar (ignored: TF Serving refuses a signature without
  inputs) -> `json`, the document also stored as the asset `faceswap_tf.json`: direction,
  names, training step, crop size, padding, coverage, resolution and the alignment template
  with its fit weights, which is all a converter needs to align faces for this model.
"""

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from faceswap_tf import data, files, models
from faceswap_tf.errors import UserError
from faceswap_tf.faces import align
from faceswap_tf.serving import METADATA_FORMAT

METADATA_VERSION = 1
ASSET_NAME = "faceswap_tf.json"
MODELS_CONFIG = "models.config"
DIRECTIONS = {"a_to_b": ("a", "b"), "b_to_a": ("b", "a")}
PRECISIONS = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    model_dir: str
    name: str
    direction: str = "a_to_b"
    export_dir: str = "export"
    version: int | None = None  # None: the training step, or the next free number if taken
    mixed_precision: str = "off"  # float32 runs anywhere TF Serving does
    reuse: bool = False  # an existing version of the same step and direction is returned, not repeated

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise UserError(f"--direction={self.direction}: choose {' or '.join(DIRECTIONS)}")
        if not _NAME.match(self.name):
            raise UserError(f"--name={self.name}: use letters, digits, '_', '.' and '-' only")
        if self.version is not None and self.version < 1:
            raise UserError(f"--version={self.version}: must be a positive integer")
        if self.mixed_precision not in PRECISIONS:
            raise UserError(f"--mixed_precision={self.mixed_precision}: choose {', '.join(PRECISIONS)}")


class Swapper(tf.Module):
    """The exported module: one direction of the trained pair (signatures: module docstring)."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, metadata: dict, asset_path: str):
        super().__init__(name="swapper")
        self.encoder, self.decoder = encoder, decoder
        self.framing = data.Framing(metadata["crop_size"], metadata["resolution"], metadata["coverage"])
        self.metadata_asset = tf.saved_model.Asset(asset_path)
        self._metadata_json = json.dumps(metadata, sort_keys=True)
        size = metadata["crop_size"]
        self.swap = tf.function(self._swap, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.uint8, name="faces")])
        self.swap_image_bytes = tf.function(self._swap_image_bytes, input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes")])
        self.metadata = tf.function(self._metadata, input_signature=[
            tf.TensorSpec([], tf.int32, name="request")])

    def signatures(self) -> dict:
        return {"serving_default": self.swap, "swap_image_bytes": self.swap_image_bytes,
                "metadata": self.metadata}

    def _swap(self, faces):
        out = self.decoder(self.encoder(self.framing.to_view(faces), training=False), training=False)
        return self.framing.blend(faces, out["rgb"], out["mask"])

    def _swap_image_bytes(self, image_bytes):
        size = self.framing.crop_size

        def decode(encoded):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            check = tf.debugging.assert_equal(
                tf.shape(image)[:2], tf.constant([size, size]),
                message=f"image_bytes: every image must be a {size}x{size} aligned face crop")
            with tf.control_dependencies([check]):
                return tf.identity(image)

        # Spatial size left open here, so that the check above is what reports a wrong size.
        faces = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
        faces = tf.ensure_shape(faces, [None, size, size, 3])
        out = self._swap(faces)
        mask = data.to_uint8(out["mask"] * 255.0)

        def png(image):  # zlib level 1: lossless still, and several times faster than the default
            return tf.io.encode_png(image, compression=1)

        return {
            "swapped_bytes": tf.map_fn(png, out["swapped"], fn_output_signature=tf.string),
            "mask_bytes": tf.map_fn(png, mask, fn_output_signature=tf.string),
        }

    def _metadata(self, request):
        del request
        return {"json": tf.constant(self._metadata_json)}


def read_training_config(model_dir: str) -> dict:
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{model_dir}: no config.json; is it a faceswap_tf.train --model_dir?") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: unreadable ({error})") from None
    if "faces" not in document:
        raise UserError(f"{path}: written by an older version without the faces' framing; run "
                        "faceswap_tf.train once more with the same flags to refresh it")
    return document


def build_swapper(model_dir: str | None, direction: str, mixed_precision: str = "off",
                  extra_metadata: dict | None = None, asset_path: str | None = None,
                  training: dict | None = None) -> tuple[Swapper, dict]:
    """The Swapper of model_dir's newest checkpoint, and its metadata. Without a model_dir,
    `training` (what config.json holds) gives freshly initialised networks, for benchmarks."""
    source, target = DIRECTIONS[direction]
    encoder, decoders, step, training = restore_generator(model_dir, (target,), mixed_precision, training)
    cfg = models.ModelConfig(**training["model"])
    faces = training["faces"]
    metadata = {
        "format": METADATA_FORMAT, "format_version": METADATA_VERSION,
        "direction": direction, "source": faces[source]["name"], "target": faces[target]["name"],
        "names": {"a": faces["a"]["name"], "b": faces["b"]["name"]},
        "step": step,
        "crop_size": faces[source]["crop_size"], "padding": faces[source]["padding"],
        "coverage": training["coverage"], "resolution": cfg.resolution,
        "template": faces[source]["template"],
        "template_points": align.TEMPLATE_68.round(6).tolist(),
        "fit_weights": align.FIT_WEIGHTS.tolist(),
        "compute_dtype": PRECISIONS[mixed_precision],
        "synthetic_media": "Outputs of this model are synthetic media and must be labelled as such.",
        **(extra_metadata or {}),
    }
    if asset_path is None:
        asset_path = os.path.join(tempfile.mkdtemp(prefix="faceswap_tf-"), ASSET_NAME)
    with open(asset_path, "w") as out:
        json.dump(metadata, out, indent=1, sort_keys=True)
    return Swapper(encoder, decoders[target], metadata, asset_path), metadata


def restore_generator(model_dir: str | None, sides=("a", "b"), mixed_precision: str = "off",
                      training: dict | None = None) -> tuple[keras.Model, dict, int, dict]:
    """The encoder and the decoders of `sides` of model_dir's newest checkpoint, its step and
    its config.json. Without a model_dir, `training` (what config.json holds) gives freshly
    initialised networks, for benchmarks."""
    training = training if model_dir is None else read_training_config(model_dir)
    checkpoint_path = tf.train.latest_checkpoint(model_dir) if model_dir is not None else None
    if model_dir is not None and not checkpoint_path:
        raise UserError(f"{model_dir}: no checkpoint; train first")
    cfg = models.ModelConfig(**training["model"])
    keras.mixed_precision.set_global_policy(PRECISIONS[mixed_precision])
    try:
        encoder = models.build_encoder(cfg)
        decoders = {side: models.build_decoder(cfg, side) for side in sides}
    finally:
        keras.mixed_precision.set_global_policy("float32")
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(encoder=encoder, step=step,
                                     **{f"decoder_{side}": decoders[side] for side in sides})
    try:
        if checkpoint_path:
            checkpoint.restore(checkpoint_path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise UserError(f"{checkpoint_path}: does not hold this model's networks ({error})") from None
    return encoder, decoders, int(step.numpy()), training


def versions(base: str) -> list[int]:
    """The numbered versions in export_dir/NAME, oldest first."""
    if not os.path.isdir(base):
        return []
    return sorted(int(entry) for entry in os.listdir(base) if entry.isdigit())


def export(config: ExportConfig, log=None) -> str:
    """Writes a new version; returns its path. Never overwrites an existing version."""
    base = os.path.join(config.export_dir, config.name)
    if config.version is not None:
        _check_free(base, config.version)
    read_training_config(config.model_dir)  # fail before anything is written
    latest = tf.train.latest_checkpoint(config.model_dir)
    if not latest:
        raise UserError(f"{config.model_dir}: no checkpoint to export; train first")
    if config.reuse:
        step = int(latest.rsplit("-", 1)[1])
        for version in reversed(versions(base)):
            try:
                with open(os.path.join(base, str(version), "assets", ASSET_NAME)) as handle:
                    made = json.load(handle)
            except (OSError, ValueError):
                continue
            if (made.get("step"), made.get("direction"), made.get("compute_dtype")) == (
                    step, config.direction, PRECISIONS[config.mixed_precision]):
                if log is not None:
                    log.write(f"{os.path.join(base, str(version))} already holds step {step}\n")
                return os.path.join(base, str(version))
    os.makedirs(base, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".partial-", dir=base)  # not a number: TF Serving skips it
    try:
        model_dir = os.path.abspath(config.model_dir)
        swapper, metadata = build_swapper(
            config.model_dir, config.direction, config.mixed_precision,
            extra_metadata={"model_name": config.name, "model_dir": model_dir,
                            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            asset_path=os.path.join(partial, ASSET_NAME),
        )
        saved = os.path.join(partial, "saved_model")
        tf.saved_model.save(swapper, saved, signatures=swapper.signatures())
        version = _place(saved, base, config.version, metadata["step"])
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    write_models_config(config.export_dir)
    path = os.path.join(base, str(version))
    if log is not None:
        log.write(f"exported {config.direction} of {config.model_dir} (step {metadata['step']}) "
                  f"to {path}\n")
    return path


def _place(saved: str, base: str, wanted: int | None, step: int) -> int:
    """Renames the finished SavedModel to base/VERSION; returns VERSION."""
    if wanted is not None:
        _check_free(base, wanted)
        candidates = [wanted]
    else:
        taken = versions(base)
        first = step if step >= 1 and step not in taken else max(taken + [0]) + 1
        candidates = range(first, first + 100)
    for version in candidates:
        try:
            os.rename(saved, os.path.join(base, str(version)))  # fails if another export took it
            return version
        except OSError:
            continue
    raise UserError(f"{base}: could not claim a free version number")


def _check_free(base: str, version: int) -> None:
    if os.path.exists(os.path.join(base, str(version))):
        raise UserError(f"{os.path.join(base, str(version))}: exists; versions are never overwritten")


def write_models_config(export_dir: str, file_name: str = MODELS_CONFIG, base_path=os.path.abspath) -> str:
    """TF Serving's model config listing every exported model under export_dir; base_path
    maps a model's folder to the path the server sees (another one inside a container)."""
    names = sorted(
        entry for entry in os.listdir(export_dir)
        if _NAME.match(entry) and versions(os.path.join(export_dir, entry))
    )
    lines = ["# Written by faceswap_tf.export: every model under this folder, newest version served.",
             "model_config_list {"]
    for name in names:
        lines += ["  config {", f'    name: "{name}"',
                  f'    base_path: "{base_path(os.path.join(export_dir, name))}"',
                  '    model_platform: "tensorflow"', "  }"]
    lines.append("}")
    path = os.path.join(export_dir, file_name)
    files.write_atomic(path, "\n".join(lines) + "\n")
    return path


def load_metadata(saved_model) -> dict:
    """The metadata of a loaded Swapper SavedModel (tf.saved_model.load result)."""
    out = saved_model.signatures["metadata"](request=tf.constant(0, tf.int32))
    return json.loads(out["json"].numpy().decode())

