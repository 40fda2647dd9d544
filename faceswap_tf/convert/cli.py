"""Swap faces in a video, an image or a folder of images with an exported model.

  python -m faceswap_tf.convert --model=export/demo --input=clip.mp4 --output=swapped.mp4

(also `faceswap-convert` and `tools/convert`.) --model takes export/NAME (its newest version) or
export/NAME/VERSION; --serving_url sends the faces to TensorFlow Serving instead
(http://HOST:8501/v1/models/NAME[/versions/N], or grpc://HOST:8500/NAME). Videos keep their
frame count, frame rate, size and audio. Every output is labelled as synthetic media in its
metadata; --watermark adds a visible label.
"""

import sys

from absl import flags

from faceswap_tf import app
from faceswap_tf.convert import blend, converter
from faceswap_tf.faces import detect, identity

_MODEL = flags.DEFINE_string("model", None, "export/NAME (newest version) or export/NAME/VERSION.")
_SERVING_URL = flags.DEFINE_string(
    "serving_url", None,
    "TF Serving instead of --model: http://HOST:8501/v1/models/NAME[/versions/N] or grpc://HOST:8500/NAME.")
_SERVING_TIMEOUT = flags.DEFINE_float("serving_timeout", 30.0, "Seconds to wait for each answer.")
_INPUT = flags.DEFINE_string("input", None, "A video, an image, or a folder of images.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "The output video, image or folder.", required=True)
_FACES = flags.DEFINE_enum("faces", "all", list(converter.FACE_CHOICES), "Which faces to swap.")
_REFERENCE = flags.DEFINE_string("reference", None, "Swap only faces of the person in this image.")
_REFERENCE_DISTANCE = flags.DEFINE_float(
    "reference_distance", identity.DEFAULT_MATCH_DISTANCE, "Largest dlib descriptor distance to --reference.")
_DETECTOR = flags.DEFINE_enum("detector", "hog", list(detect.DETECTORS), "dlib face detector.")
_MIN_FACE_SIZE = flags.DEFINE_integer(
    "min_face_size", 80, "Smallest face to find, in pixels; detection runs on the frame scaled to suit it.")
_KEYFRAME_INTERVAL = flags.DEFINE_integer(
    "keyframe_interval", 8, "Frames between whole-frame detections (faces are tracked in between).")
_SMOOTHING = flags.DEFINE_float(
    "smoothing", 2.0, "Temporal smoothing of the landmarks: Gaussian sigma in frames (0: off).")
_COLOUR = flags.DEFINE_enum(
    "colour", "local", list(blend.COLOUR_MODES),
    "Colour matched to the original face's skin: none; lab (L*a*b* mean and spread); hist (histograms); "
    "local (lab, then the skin's colour place by place at the scale of lighting, so no seam shows at the "
    "mask's edge).")
_ERODE = flags.DEFINE_float("erode", 0.02, "Mask erosion, as a fraction of the face crop.")
_FEATHER = flags.DEFINE_float("feather", 0.03, "Mask feathering (Gaussian sigma), as a fraction of the crop.")
_BLEND = flags.DEFINE_enum("blend", "alpha", list(blend.BLEND_MODES),
                           "alpha: the feathered mask; seamless: cv2.seamlessClone (slower).")
_MASK = flags.DEFINE_enum(
    "mask", "learned", list(converter.MASKS),
    "learned: the model's mask; hull: the model's mask within the hull of the face's landmarks (jaw to brows).")
_DETAIL = flags.DEFINE_float(
    "detail", 0.0, "How much of the frame's own fine skin detail (finer than the model can draw) replaces "
    "the swap's, away from the eyes, brows, nostrils and mouth: 0 (none) to 1.")
_CODEC = flags.DEFINE_string("codec", "libx264", "ffmpeg video codec.")
_CRF = flags.DEFINE_integer("crf", 18, "Constant rate factor (libx264/libx265): lower is better quality.")
_PRESET = flags.DEFINE_string("preset", "veryfast", "libx264/libx265 preset.")
_START = flags.DEFINE_float("start", None, "Convert from this second.")
_END = flags.DEFINE_float("end", None, "Convert up to this second.")
_HELD_OUT_OF = flags.DEFINE_string(
    "held_out_of", None, "A training run's --model_dir: convert only the frames of --input it held out of "
    "training (from its run record), for an honest evaluation.")
_WATERMARK = flags.DEFINE_boolean("watermark", False, "Add a visible 'synthetic media' label.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Faces per call of the model.")


def main(argv):
    del argv
    config = converter.ConvertConfig(
        input=_INPUT.value, output=_OUTPUT.value, model=_MODEL.value, serving_url=_SERVING_URL.value,
        serving_timeout=_SERVING_TIMEOUT.value, faces=_FACES.value, reference=_REFERENCE.value,
        reference_distance=_REFERENCE_DISTANCE.value,
        detector=detect.DetectorConfig(detector=_DETECTOR.value, min_face_size=_MIN_FACE_SIZE.value),
        keyframe_interval=_KEYFRAME_INTERVAL.value, smoothing=_SMOOTHING.value, colour=_COLOUR.value,
        erode=_ERODE.value, feather=_FEATHER.value, blend=_BLEND.value, mask=_MASK.value, detail=_DETAIL.value,
        codec=_CODEC.value, crf=_CRF.value,
        preset=_PRESET.value, start=_START.value, end=_END.value, held_out_of=_HELD_OUT_OF.value,
        watermark=_WATERMARK.value,
        batch_size=_BATCH_SIZE.value,
    )
    summary = converter.run(config)
    for line in summary.lines():
        print(line, file=sys.stderr)
    print(f"wrote {config.output}", file=sys.stderr)


def run():
    """Console entry point `faceswap-convert`, `python -m faceswap_tf.convert` and `tools/convert`."""
    app.run(main)


