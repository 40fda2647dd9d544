"""The export stage: a trained swapper as a numbered SavedModel version for TF Serving.

`export()` rebuilds the encoder and one decoder from the run record (`run_record`), restores
them from the newest checkpoint (after checking the two agree), wraps them in a `Swapper`
module and saves it to `export_dir/NAME/VERSION/` (written in a hidden temporary folder, then
renamed, so TF Serving never sees a partial version). Its signatures and metadata are the
contract in `signatures.py`; the network sees the centre `coverage` of each crop at its
resolution, and its RGB and mask are mapped back onto the crop and blended there
(`framing.Framing`), so pixels the mask leaves alone keep the crop's full resolution.
"""

import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

from faceswap_tf import checkpoints, files, framing, models, run_record, runtime
from faceswap_tf.errors import UserError, brief
from faceswap_tf.faces import align
from faceswap_tf.signatures import ASSET_NAME, DIRECTIONS, SwapperMetadata

MODELS_CONFIG = "models.config"
PARTIAL = ".partial-"  # an export's temporary folder: .partial-PID-XXXX
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
        runtime.check_choices(self.mixed_precision)


class ExportedModule(tf.Module):
    """What every exported model (swapper, detector) holds: its metadata, as the asset
    `faceswap_tf.json` and as the `metadata` signature, the framing of its input crops, and two
    signatures of its own: `serving_default` on uint8 crops (`by_faces`) and one on encoded
    images (`by_bytes`, named `bytes_signature`)."""

    def __init__(self, name: str, metadata, asset_path: str, by_faces, by_bytes, bytes_signature: str):
        super().__init__(name=name)
        self.framing = metadata.framing
        self.metadata_asset = tf.saved_model.Asset(asset_path)
        self._metadata_json = metadata.to_json()
        self.bytes_signature = bytes_signature
        size = self.framing.crop_size
        self.by_faces = tf.function(by_faces, autograph=False, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.uint8, name="faces")])
        self.by_bytes = tf.function(by_bytes, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes")])
        self.metadata = tf.function(self._metadata, autograph=False, input_signature=[
            tf.TensorSpec([], tf.int32, name="request")])

    def signatures(self) -> dict:
        return {"serving_default": self.by_faces, self.bytes_signature: self.by_bytes,
                "metadata": self.metadata}

    def _metadata(self, request):
        del request
        return {"json": tf.constant(self._metadata_json)}


class Swapper(ExportedModule):
    """The exported module: one direction of the trained pair (signatures: `signatures.py`)."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, metadata: SwapperMetadata, asset_path: str):
        super().__init__("swapper", metadata, asset_path, self._swap, self._swap_image_bytes,
                         "swap_image_bytes")
        self.encoder, self.decoder = encoder, decoder

    def _swap(self, faces):
        out = self.decoder(self.encoder(self.framing.tf_to_view(faces), training=False), training=False)
        return self.framing.tf_blend(faces, out["rgb"], out["mask"])

    def _swap_image_bytes(self, image_bytes):
        out = self._swap(decode_crops(image_bytes, self.framing.crop_size))
        mask = framing.to_uint8(out["mask"] * 255.0)

        def png(image):  # zlib level 1: lossless still, and several times faster than the default
            return tf.io.encode_png(image, compression=1)

        return {
            "swapped_bytes": tf.map_fn(png, out["swapped"], fn_output_signature=tf.string),
            "mask_bytes": tf.map_fn(png, mask, fn_output_signature=tf.string),
        }


def decode_crops(image_bytes, size: int):
    """string [N] of PNG or JPEG S x S crops -> uint8 [N, S, S, 3], in the graph; an image of
    another size fails the call with a message saying so."""

    def decode(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        check = tf.debugging.assert_equal(
            tf.shape(image)[:2], tf.constant([size, size]),
            message=f"image_bytes: every image must be a {size}x{size} aligned face crop")
        with tf.control_dependencies([check]):
            return tf.identity(image)

    # Spatial size left open here, so that the check above is what reports a wrong size.
    faces = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    return tf.ensure_shape(faces, [None, size, size, 3])


def build_swapper(model_dir: str | None, direction: str, mixed_precision: str = "off",
                  asset_path: str | None = None, record: run_record.RunRecord | None = None,
                  provenance: dict | None = None) -> tuple[Swapper, SwapperMetadata]:
    """The Swapper of model_dir's newest checkpoint, and its metadata (`provenance`: its
    model_name, model_dir, exported_at). Without a model_dir, `record` gives freshly
    initialised networks, for benchmarks."""
    source, target = DIRECTIONS[direction]
    policy = runtime.resolve_precision(mixed_precision)
    encoder, decoders, step, record = restore_generator(model_dir, (target,), policy, record)
    metadata = SwapperMetadata(
        direction=direction, names={side: face.name for side, face in record.faces.items()}, step=step,
        framing=record.framing, template_points=align.TEMPLATE_68.round(6).tolist(),
        fit_weights=align.FIT_WEIGHTS.tolist(), compute_dtype=policy, **(provenance or {}))
    if asset_path is None:
        asset_path = os.path.join(tempfile.mkdtemp(prefix="faceswap_tf-"), ASSET_NAME)
    with open(asset_path, "w") as out:
        out.write(metadata.to_json())
    return Swapper(encoder, decoders[target], metadata, asset_path), metadata


def restore_generator(model_dir: str | None, sides=("a", "b"), policy: str = "float32",
                      record: run_record.RunRecord | None = None
                      ) -> tuple[keras.Model, dict, int, run_record.RunRecord]:
    """The encoder and the decoders of `sides` of model_dir's newest checkpoint (checked against
    its run record), its step and the record. Without a model_dir, `record` gives freshly
    initialised networks, for benchmarks."""
    checkpoint_path = None
    if model_dir is not None:
        record, checkpoint_path = run_record.read_checked(model_dir)
    with runtime.policy_scope(policy):
        encoder = models.build_encoder(record.model)
        decoders = {side: models.build_decoder(record.model, side) for side in sides}
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(encoder=encoder, step=step,
                                     **{f"decoder_{side}": decoders[side] for side in sides})
    try:
        if checkpoint_path:
            checkpoint.restore(checkpoint_path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise UserError(f"{checkpoint_path}: does not hold this model's networks ({brief(error)})") from None
    return encoder, decoders, int(step.numpy()), record


def versions(base: str) -> list[int]:
    """The numbered versions in export_dir/NAME, oldest first."""
    if not os.path.isdir(base):
        return []
    return sorted(int(entry) for entry in os.listdir(base) if entry.isdigit())


def export(config: ExportConfig, log=None) -> str:
    """Writes a new version; returns its path. Never overwrites an existing version."""
    base = os.path.join(config.export_dir, config.name)
    files.check_folder(base, "--export_dir")
    if config.version is not None:
        _check_free(base, config.version)
    _, latest = run_record.read_checked(config.model_dir, log or sys.stderr)  # fail before anything is written
    policy = runtime.resolve_precision(config.mixed_precision)
    if config.reuse:
        step = checkpoints.step_of(latest)
        for version in reversed(versions(base)):
            try:
                with open(os.path.join(base, str(version), "assets", ASSET_NAME)) as handle:
                    made = json.load(handle)
            except (OSError, ValueError, RecursionError):
                continue
            if (made.get("step"), made.get("direction"), made.get("compute_dtype")) == (
                    step, config.direction, policy):
                if log is not None:
                    log.write(f"{os.path.join(base, str(version))} already holds step {step}\n")
                return os.path.join(base, str(version))
    made = {}

    def build(partial: str):
        swapper, made["metadata"] = build_swapper(
            config.model_dir, config.direction, config.mixed_precision,
            asset_path=os.path.join(partial, ASSET_NAME), provenance=provenance(config.name, config.model_dir))
        return swapper, swapper.signatures(), made["metadata"].step

    path = save_version(config.export_dir, config.name, config.version, build)
    if log is not None:
        log.write(f"exported {config.direction} of {config.model_dir} (step {made['metadata'].step}) "
                  f"to {path}\n")
    return path


def provenance(name: str, model_dir: str) -> dict:
    """The provenance fields of an exported model's metadata."""
    return {"model_name": name, "model_dir": os.path.abspath(model_dir),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def save_version(export_dir: str, name: str, wanted: int | None, build) -> str:
    """Saves the module `build(partial)` returns as (module, signatures, step) to
    export_dir/NAME/VERSION, written in a hidden temporary folder and renamed into place (so
    TF Serving never sees a partial version), then rewrites models.config; returns the path.
    `build` writes the metadata asset into `partial`."""
    base = os.path.join(export_dir, name)
    files.make_folder(base, "--export_dir")
    _sweep_partials(base)
    # Not a number, so TF Serving skips it; named after this process, so a later export can
    # tell a dead one's leftovers from a live one's.
    partial = tempfile.mkdtemp(prefix=f"{PARTIAL}{os.getpid()}-", dir=base)
    try:
        module, signature_map, step = build(partial)
        saved = os.path.join(partial, "saved_model")
        try:
            tf.saved_model.save(module, saved, signatures=signature_map)
        except (OSError, tf.errors.OpError) as error:
            raise UserError(f"{base}: cannot write the SavedModel ({brief(error)})") from None
        version = _place(saved, base, wanted, step)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    try:
        write_models_config(export_dir)
    except OSError as error:
        raise UserError(f"{os.path.join(export_dir, MODELS_CONFIG)}: cannot write it "
                        f"({error.strerror}); the version itself is in place") from None
    return os.path.join(base, str(version))


def _sweep_partials(base: str) -> None:
    """Removes the temporary folders of exports that were killed: those named after a process
    that has gone, and unnamed ones (from before they were named) untouched for an hour."""
    for entry in os.listdir(base):
        if not entry.startswith(PARTIAL):
            continue
        pid = entry[len(PARTIAL):].split("-", 1)[0]
        path = os.path.join(base, entry)
        if pid.isdigit():
            dead = not files.process_alive(int(pid))
        else:
            try:
                dead = time.time() - os.path.getmtime(path) > 3600
            except OSError:
                continue
        if dead:
            shutil.rmtree(path, ignore_errors=True)


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


def load_metadata(saved_model, where: str = "the SavedModel") -> SwapperMetadata:
    """The metadata of a loaded Swapper SavedModel (tf.saved_model.load result)."""
    out = saved_model.signatures["metadata"](request=tf.constant(0, tf.int32))
    return SwapperMetadata.from_json(out["json"].numpy().decode(), where)
