"""How consistent a set of aligned crops is: dlib's predictor run again on the crops."""

import dataclasses
import os

import cv2
import numpy as np

from faceswap_tf.faces import align, alignments, detect


@dataclasses.dataclass(frozen=True)
class Consistency:
    faces: int
    eye_spread: float  # largest std of an eye-centre coordinate, as a fraction of the crop
    eye_tilt: float  # mean |angle| of the eye line, degrees
    eye_offset: float  # largest distance of a mean eye centre from the template's, fraction of crop


def alignment_consistency(records: list[alignments.FaceRecord], folder: str,
                          detector: detect.FaceDetector) -> Consistency:
    centres, angles = [], []
    for record in records:
        crop = cv2.cvtColor(cv2.imread(os.path.join(folder, record.file)), cv2.COLOR_BGR2RGB)
        # The predictor starts from the detector's box, carried into the crop.
        left, top, right, bottom = record.box
        centre = align.transform_points(record.matrix, [[(left + right) / 2, (top + bottom) / 2]])[0]
        half = (right - left) / 2 * np.linalg.norm(record.matrix[0, :2])
        box = tuple(int(round(v)) for v in (centre[0] - half, centre[1] - half,
                                            centre[0] + half, centre[1] + half))
        eye_left, eye_right = align.eye_centres(detector.landmarks(crop, box))
        centres.append(np.concatenate([eye_left, eye_right]))
        angles.append(np.degrees(np.arctan2(eye_right[1] - eye_left[1], eye_right[0] - eye_left[0])))
    size = records[0].size
    template = np.concatenate(align.eye_centres(align.template_points(size, records[0].padding)))
    centres = np.array(centres)
    return Consistency(
        faces=len(records),
        eye_spread=float(centres.std(axis=0).max() / size),
        eye_tilt=float(np.mean(np.abs(angles))),
        eye_offset=float(np.abs(centres.mean(axis=0) - template).max() / size),
    )
