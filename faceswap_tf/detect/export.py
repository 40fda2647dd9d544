"""Export a trained detector as a SavedModel version that TensorFlow Serving loads.

  python -m faceswap_tf.detect.export --model_dir=runs/detect/model --name=detector

Writes export/NAME/VERSION/ (VERSION = the training step, or the next free number) and
rewrites export/models.config. Signatures and metadata: `faceswap_tf/signatures.py` (DETECTOR).
"""

import sys

from absl import flags

from faceswap_tf import app
from faceswap_tf.detect import exporter

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "The detector run's --model_dir.", required=True)
_NAME = flags.DEFINE_string("name", "detector", "Model name: export/NAME/, and TF Serving's name.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", "export", "TF Serving's model base folder.")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: the step, or the next free one).")


def main(argv):
    del argv
    config = exporter.DetectorExportConfig(_MODEL_DIR.value, _NAME.value, _EXPORT_DIR.value, _VERSION.value)
    exporter.export(config, log=sys.stderr)


def run():
    """Console entry point `faceswap-detect-export`."""
    app.run(main)


if __name__ == "__main__":
    run()
