"""Extract aligned faces from videos and images.

  python -m faceswap_tf.extract --input=clip.mp4 --output_dir=faces_a

Writes one aligned PNG crop per face and DIR/alignments.json. Re-running on the same output
folder replaces the faces of the sources it reads again, so nothing is duplicated.
"""

import sys

from absl import flags

from faceswap_tf import app, extractor
from faceswap_tf.faces import detect, identity

_INPUT = flags.DEFINE_string("input", None, "A video, an image, or a folder of them.", required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where crops and alignments.json go.", required=True)
_DETECTOR = flags.DEFINE_enum(
    "detector", "hog", list(detect.DETECTORS),
    "Face detector: hog (dlib HOG, fast, frontal faces) or cnn (dlib MMOD CNN, finds turned "
    "and small faces, about 1.5 s per 640x360 frame on 2 cores).",
)
_MIN_FACE_SIZE = flags.DEFINE_integer(
    "min_face_size", 80,
    "Smallest face to find, in frame pixels. Detection runs on the frame scaled so that such a "
    "face just stays findable: raise it for large faces to detect faster (160 halves the "
    "frame for the HOG detector); lower it for small faces.",
)
_SIZE = flags.DEFINE_integer("size", 256, "Aligned crop size in pixels.")
_PADDING = flags.DEFINE_float(
    "padding", 0.2,
    "Crop margin around the inner face (eyebrows to lips), as a fraction of the crop on each "
    "side. 0.2 keeps the jaw and some forehead.",
)
_EVERY_NTH = flags.DEFINE_integer("every_nth", 1, "Look at every Nth video frame only.")
_LARGEST_FACE = flags.DEFINE_boolean(
    "largest_face", False, "Keep only the largest face of each frame (default: all faces)."
)
_REFERENCE = flags.DEFINE_string(
    "reference", None,
    "An image of the person to keep: faces whose dlib face descriptor is farther than "
    "--reference_distance from the largest face in it are dropped.",
)
_REFERENCE_DISTANCE = flags.DEFINE_float(
    "reference_distance", identity.DEFAULT_MATCH_DISTANCE,
    "Largest descriptor distance that counts as the reference person (dlib's 0.6).",
)
_LANDMARK_MODEL = flags.DEFINE_string(
    "landmark_model", None, "dlib 68-point shape predictor file (default: face_recognition_models')."
)
_CNN_MODEL = flags.DEFINE_string(
    "cnn_model", None, "dlib MMOD face detector file (default: face_recognition_models')."
)
_DESCRIPTOR_MODEL = flags.DEFINE_string(
    "descriptor_model", None, "dlib face descriptor file (default: face_recognition_models')."
)
_KEYFRAME_INTERVAL = flags.DEFINE_integer(
    "keyframe_interval", 8,
    "In videos, detect on the whole frame every N frames and in between look for each face "
    "only near where it was (107 against 63 frames/s on a 480x480 sample clip). A new face "
    "beside tracked ones is found at the next such keyframe; a lost face triggers one at once. "
    "1: whole-frame detection always.",
)
_WORKERS = flags.DEFINE_integer("workers", 0, "Worker processes; 0 means one per CPU core.")


def main(argv):
    del argv
    config = extractor.ExtractConfig(
        input=_INPUT.value,
        output_dir=_OUTPUT_DIR.value,
        detector=detect.DetectorConfig(
            detector=_DETECTOR.value,
            min_face_size=_MIN_FACE_SIZE.value,
            landmark_model=_LANDMARK_MODEL.value,
            cnn_model=_CNN_MODEL.value,
        ),
        size=_SIZE.value,
        padding=_PADDING.value,
        every_nth=_EVERY_NTH.value,
        largest_face=_LARGEST_FACE.value,
        reference=_REFERENCE.value,
        reference_distance=_REFERENCE_DISTANCE.value,
        descriptor_model=_DESCRIPTOR_MODEL.value,
        keyframe_interval=_KEYFRAME_INTERVAL.value,
        workers=_WORKERS.value,
    )
    summary = extractor.run(config)
    for line in summary.lines():
        print(line, file=sys.stderr)


def run():
    """Console entry point `faceswap-extract`."""
    app.run(main)


if __name__ == "__main__":
    run()
