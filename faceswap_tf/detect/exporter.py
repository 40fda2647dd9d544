"""The detector as a numbered SavedModel version, like the swapper (`faceswap_tf.exporter`).

`export()` rebuilds the network from the detector run's record (`model_dir/config.json`),
restores it from the newest readable checkpoint (checked against the record), wraps it in a
`Detector` module whose signatures and metadata are `signatures.DETECTOR`, and saves it through
the swapper's `exporter.save_version` (hidden temporary folder, renamed into place; TF
Serving's models.config rewritten). The threshold travels in the metadata: the one chosen on
validation faces (`model_dir/report.json`).
"""

import dataclasses
import json
import os
import sys

import tensorflow as tf

from faceswap_tf import checkpoints, exporter, run_record
from faceswap_tf.detect.model import build_detector
from faceswap_tf.detect.trainer import REPORT, DetectorRecord, read_record
from faceswap_tf.errors import UserError, brief
from faceswap_tf.faces import align
from faceswap_tf.signatures import ASSET_NAME, DetectorMetadata


class Detector(exporter.ExportedModule):
    """The exported module (signatures: `signatures.DETECTOR_SIGNATURES`)."""

    def __init__(self, network, metadata: DetectorMetadata, asset_path: str):
        super().__init__("detector", metadata, asset_path, self._score, self._score_image_bytes,
                         "score_image_bytes")
        self.network = network

    def _score(self, faces):
        # As training saw them: the view rounded to uint8 pixels (samples.load), in [0, 1].
        view = tf.round(tf.clip_by_value((self.framing.tf_to_view(faces) + 1.0) * 127.5, 0.0, 255.0)) / 255.0
        out = self.network(view, training=False)
        probability = tf.sigmoid(out["logit"][:, 0])
        if "mask" in out:
            mask = tf.sigmoid(out["mask"])
        else:
            side = self.framing.resolution // 4
            mask = tf.zeros([tf.shape(faces)[0], side, side, 1])
        return {"probability": probability, "mask": mask}

    def _score_image_bytes(self, image_bytes):
        faces = exporter.decode_crops(image_bytes, self.framing.crop_size)
        return {"probability": self._score(faces)["probability"]}


@dataclasses.dataclass(frozen=True)
class DetectorExportConfig:
    model_dir: str
    name: str = "detector"
    export_dir: str = "export"
    version: int | None = None

    def __post_init__(self):
        exporter.ExportConfig(self.model_dir, self.name, version=self.version)  # its checks of name, version


def build(model_dir: str, asset_path: str, provenance: dict | None = None) -> tuple[Detector, DetectorMetadata]:
    record = DetectorRecord.from_json(read_record(model_dir), run_record.path_of(model_dir))
    checkpoint = checkpoints.newest_readable(model_dir)
    if not checkpoint:
        raise UserError(f"{model_dir}: no checkpoint; train the detector first")
    run_record.check_matches_checkpoint(record.settings(), checkpoint, run_record.path_of(model_dir),
                                        "the record no longer describes the checkpoint (edited by hand?)")
    try:
        network = build_detector(record.model)
        step = tf.Variable(0, dtype=tf.int64)
        tf.train.Checkpoint(detector=network, step=step).restore(checkpoint).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, TypeError, tf.errors.OpError) as error:
        raise UserError(f"{checkpoint}: does not hold this detector ({brief(error)})") from None
    try:
        with open(os.path.join(model_dir, REPORT)) as handle:
            report = json.load(handle)
        threshold = float(report["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{model_dir}: no readable {REPORT} (the threshold); run faceswap_tf.detect to the "
                        "end") from None
    trained_on = sorted(_trained_on(record))
    metadata = DetectorMetadata(
        step=int(step.numpy()), framing=record.framing, template_points=align.TEMPLATE_68.round(6).tolist(),
        fit_weights=align.FIT_WEIGHTS.tolist(), threshold=threshold, trained_on=trained_on,
        test_identities=list(record.test_identities), **(provenance or {}))
    with open(asset_path, "w") as out:
        out.write(metadata.to_json())
    return Detector(network, metadata, asset_path), metadata


def _trained_on(record: DetectorRecord) -> set:
    """The people whose faces the detector trained on, as its dataset says now."""
    from faceswap_tf.detect import manifest as manifest_lib

    try:
        found = manifest_lib.read(record.data_dir)
    except UserError:
        return set()
    people = {job.source for job in found.jobs.values()} | {job.target for job in found.jobs.values()}
    return people - set(record.test_identities) - set(record.calibration_identities)


def export(config: DetectorExportConfig, log=sys.stderr) -> str:
    """Writes a new version of the detector; returns its path."""
    read_record(config.model_dir)  # fail before anything is written
    made = {}

    def build_version(partial: str):
        detector, made["metadata"] = build(config.model_dir, os.path.join(partial, ASSET_NAME),
                                           exporter.provenance(config.name, config.model_dir))
        return detector, detector.signatures(), made["metadata"].step

    path = exporter.save_version(config.export_dir, config.name, config.version, build_version)
    log.write(f"exported the detector of {config.model_dir} (step {made['metadata'].step}, threshold "
              f"{made['metadata'].threshold:.4f}) to {path}\n")
    return path
