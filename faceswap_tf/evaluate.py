"""Evaluate a swapped video against its original as the eye sees it: identity among other
people, mouth and eyes following the original's, motion, detail, pose and background, each
against an unmodified copy and a still and a jittering paste of B; with the training run,
held-out frames only, the model's held-out metrics, and the ceiling (A's own face at the
network's resolution: what a perfect model of that size would score).

  python -m faceswap_tf.evaluate --original=clip_a.mp4 --swapped=runs/demo/swapped_a.mp4 \
      --faces_a=runs/demo/faces_a --faces_b=runs/demo/faces_b [--model_dir=runs/demo/model]

Writes <stem>_report.json, <stem>_report.md and <stem>_contact_sheet.png beside the swapped
video (or in --output_dir). The metrics and their stand-ins: faceswap_tf/evaluator.py.
"""

import sys

from absl import flags

from faceswap_tf import app, evaluator

_ORIGINAL = flags.DEFINE_string("original", None, "The video the swap was made from.", required=True)
_SWAPPED = flags.DEFINE_string("swapped", None, "The swapped video (tools/convert's output).", required=True)
_FACES_A = flags.DEFINE_string("faces_a", None, "Extract folder of A (the gallery of A).", required=True)
_FACES_B = flags.DEFINE_string("faces_b", None, "Extract folder of B (the gallery of B).", required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the report goes (default: beside --swapped).")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "The training run: adds held-out identity and reconstruction PSNR/SSIM, and the ceiling "
    "control (A's own face through the network's view at its resolution).")
_START = flags.DEFINE_float(
    "start", None, "Second of --original where --swapped begins (default: found by matching frames).")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Evaluate at most this many frames.")
_HOLDOUT = flags.DEFINE_float(
    "holdout", None, "Held-out share of each face set (default: the model's with --model_dir, else 0.2).")
_DISTRACTORS = flags.DEFINE_list(
    "distractors", [], "Videos, images or folders of OTHER people: identity is retrieved among A, B and them "
    "(each video is one person; each face of an image one person).")
_GALLERY_SIZE = flags.DEFINE_integer("gallery_size", 30, "Faces per person in the galleries of A and B.")
_CONTROLS = flags.DEFINE_boolean(
    "controls", True, "Also measure the controls (unmodified, still and jittering paste of B; with --model_dir "
    "the ceiling) for scale.")
_MIN_FACE_SIZE = flags.DEFINE_integer("min_face_size", 80, "Smallest face sought, in frame pixels.")
_SHEET_ROWS = flags.DEFINE_integer("sheet_rows", 6, "Frames on the contact sheet.")


def main(argv):
    del argv
    config = evaluator.EvaluateConfig(
        original=_ORIGINAL.value, swapped=_SWAPPED.value, faces_a=_FACES_A.value, faces_b=_FACES_B.value,
        output_dir=_OUTPUT_DIR.value, model_dir=_MODEL_DIR.value, start=_START.value,
        max_frames=_MAX_FRAMES.value, holdout=_HOLDOUT.value, distractors=tuple(_DISTRACTORS.value),
        gallery_size=_GALLERY_SIZE.value, min_face_size=_MIN_FACE_SIZE.value, sheet_rows=_SHEET_ROWS.value,
        controls=_CONTROLS.value,
    )
    evaluator.run(config, log=sys.stderr)


def run():
    """Console entry point `faceswap-evaluate`."""
    app.run(main)


if __name__ == "__main__":
    run()
