"""Export a trained swapper as a SavedModel version that TensorFlow Serving loads.

  python -m faceswap_tf.export --model_dir=runs/demo/model --direction=a_to_b --name=demo

Writes export/NAME/VERSION/ (VERSION = the training step, or the next free number) and
rewrites export/models.config, TF Serving's list of the exported models.
"""

import sys

from absl import flags

from faceswap_tf import app, exporter, runtime, signatures

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "The training run's --model_dir.", required=True)
_NAME = flags.DEFINE_string("name", None, "Model name: export/NAME/, and TF Serving's name.", required=True)
_DIRECTION = flags.DEFINE_enum("direction", "a_to_b", list(signatures.DIRECTIONS),
                               "a_to_b: faces of A in, B's face out; b_to_a the reverse.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", "export", "TF Serving's model base folder.")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: the step, or the next free one).")
_REUSE = flags.DEFINE_boolean(
    "reuse", False, "If a version of the same training step and direction exists, keep it instead.")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "off", list(runtime.PRECISIONS),
    "Compute dtype of the exported graph; off (float32) runs on any server.",
)


def main(argv):
    del argv
    config = exporter.ExportConfig(
        model_dir=_MODEL_DIR.value, name=_NAME.value, direction=_DIRECTION.value,
        export_dir=_EXPORT_DIR.value, version=_VERSION.value, mixed_precision=_MIXED_PRECISION.value,
        reuse=_REUSE.value,
    )
    exporter.export(config, log=sys.stderr)


def run():
    """Console entry point `faceswap-export`."""
    app.run(main)


if __name__ == "__main__":
    run()
