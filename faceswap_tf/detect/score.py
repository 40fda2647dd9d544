"""Score a video, an image or a folder of them with an exported detector.

  python -m faceswap_tf.detect.score --model=export/detector --input=clip.mp4 --report=clip_detect.json \
      --plot=clip_detect.png --overlay=clip_detect.mp4

The report holds per face (frame, box, probability, judged swapped), per frame (its most
suspicious face) and per input (the median over frames with a face, the verdict at the
detector's threshold). The overlay is labelled as an analysis product.
"""

import sys

from absl import flags

from faceswap_tf import app  # isort: skip  (first: it holds back TensorFlow's start-up lines)
import tensorflow  # noqa: F401, I001  (imported now, while they are held back)

from faceswap_tf.detect import scorer

_MODEL = flags.DEFINE_string("model", None, "An exported detector: export/NAME[/VERSION].", required=True)
_INPUT = flags.DEFINE_string("input", None, "A video, an image, or a folder of them.", required=True)
_REPORT = flags.DEFINE_string("report", None, "The JSON report to write.", required=True)
_OVERLAY = flags.DEFINE_string("overlay", None, "For a video: a copy with each face's score drawn on it.")
_PLOT = flags.DEFINE_string("plot", None, "For a video: a PNG of the frame scores over time.")
_EVERY_NTH = flags.DEFINE_integer("every_nth", 1, "Score every Nth video frame only.")
_MIN_FACE_SIZE = flags.DEFINE_integer("min_face_size", 80, "Smallest face to find, in frame pixels.")


def main(argv):
    del argv
    scorer.run(scorer.ScoreConfig(model=_MODEL.value, input=_INPUT.value, report=_REPORT.value,
                                  overlay=_OVERLAY.value, plot=_PLOT.value, every_nth=_EVERY_NTH.value,
                                  min_face_size=_MIN_FACE_SIZE.value), log=sys.stderr)


def run():
    """Console entry point `faceswap-detect-score`."""
    app.run(main)


if __name__ == "__main__":
    run()
