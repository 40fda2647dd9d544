"""The evaluation report as people read it: the Markdown report, the summary lines printed
at the end of a run, and the contact sheet. `evaluator.py` measures; this renders."""

import math
import os

import cv2
import numpy as np


def contact_sheet(rows: list, height: int = 240) -> np.ndarray:
    """RGB image: per row a label, then the original frame | the swapped frame."""
    lines = []
    for entry, source, swapped in rows:
        scale = height / source.shape[0]
        size = (int(round(source.shape[1] * scale)), height)
        pair = np.hstack([cv2.resize(source, size, interpolation=cv2.INTER_AREA),
                          np.full((height, 4, 3), 255, np.uint8),
                          cv2.resize(swapped, size, interpolation=cv2.INTER_AREA)])
        label = np.full((22, pair.shape[1], 3), 255, np.uint8)
        cv2.putText(label, _row_label(entry), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        lines += [label, pair, np.full((6, pair.shape[1], 3), 255, np.uint8)]
    header = np.full((26, lines[0].shape[1], 3), 255, np.uint8)
    cv2.putText(header, "original | swapped (synthetic media)", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([header, *lines])


def _row_label(entry: dict) -> str:
    faces = [face for face in entry["faces"] if face["found"]]
    if not entry["faces"]:
        return f"frame {entry['frame']}: no face in the original"
    if not faces:
        return f"frame {entry['frame']}: no face found in the swapped frame"
    face = faces[0]
    nearer = "B" if face["closer_to_b"] else "A"
    return (f"frame {entry['frame']}: nearer {nearer} (to A {face['distance_a']:.2f}, "
            f"to B {face['distance_b']:.2f}), pose error {face['pose_rotation_error']:.1f} deg, "
            f"expression {face['expression_error']:.3f}")


def summary_lines(report: dict) -> list[str]:
    s = report["summary"]
    lines = [f"{s['frames']} frames, {s['faces']} faces in the original, {s['faces_found_in_swapped']} "
             "found in the swapped video"]
    if "identity" in s:
        i, p = s["identity"], s["pose_error_degrees"]
        lines.append(f"identity retrieval: {i['closer_to_b']:.0%} of the faces found nearer B (distance to A "
                     f"{i['distance_a']:.3f}, to B {i['distance_b']:.3f})")
        lines.append(f"pose error: yaw {p['yaw']:.2f}, pitch {p['pitch']:.2f}, roll {p['roll']:.2f} degrees "
                     f"(rotation {p['rotation']:.2f}); expression error {s['expression_error']:.3f} of the "
                     "eye span")
    if "flicker" in s and s["flicker"]["ratio"] is not None:
        lines.append(f"flicker: {s['flicker']['ratio']:.2f}x the original's frame-to-frame change in the face")
    if "background_psnr" in s:
        b = s["background_psnr"]
        lines.append(f"background PSNR: {_db(b['mean'])} (worst frame {_db(b['worst_frame'])})")
    held = report.get("held_out")
    if held:
        lines.append(f"held-out faces (step {held['step']}): A->B nearer B "
                     f"{held['identity/a_to_b_closer_to_b']:.0%}, B->A nearer A "
                     f"{held['identity/b_to_a_closer_to_a']:.0%}; reconstruction PSNR/SSIM "
                     f"A {held['reconstruction/psnr_a']:.2f} dB/{held['reconstruction/ssim_a']:.3f}, "
                     f"B {held['reconstruction/psnr_b']:.2f} dB/{held['reconstruction/ssim_b']:.3f}")
    return lines


def _db(value: float) -> str:
    return "identical" if math.isinf(value) else f"{value:.2f} dB"


def markdown(report: dict, sheet_name: str) -> str:
    inputs, s = report["inputs"], report["summary"]
    label = inputs["swapped_metadata"].get("synthetic_media") == "true"
    out = [
        f"# Evaluation of {os.path.basename(inputs['swapped'])}",
        "",
        f"- Swapped video: `{inputs['swapped']}`: {inputs['frames']} frames, made from frames "
        f"{inputs['first_frame']}-{inputs['first_frame'] + inputs['frames'] - 1} of `{inputs['original']}`"
        + (" (**the pairing is ambiguous**: another stretch matches about as well)"
           if inputs["frame_match"]["ambiguous"] else "") + ".",
        f"- Synthetic-media label in its metadata: {'present' if label else '**absent**'}"
        + (f" ({inputs['swapped_metadata'].get('generator_model')})" if label else "") + ".",
        f"- Galleries: {inputs['gallery_faces']['a']} training faces of A (`{inputs['faces_a']}`), "
        f"{inputs['gallery_faces']['b']} of B (`{inputs['faces_b']}`).",
        f"- Faces: {s['faces']} in the original frames, {s['faces_found_in_swapped']} found again in the "
        "swapped ones.",
        "",
        "| metric | value | how it is measured |",
        "|---|---|---|",
    ]
    if "identity" in s:
        i, p = s["identity"], s["pose_error_degrees"]
        out += [
            f"| identity retrieval | **{i['closer_to_b']:.0%}** of the {s['faces_found_in_swapped']} swapped "
            f"faces found ({s['faces']} in the original) nearer B | nearest neighbour among the A and B "
            "galleries by dlib's 128-D face descriptor (a stand-in for ArcFace/CosFace) |",
            f"| descriptor distance | to A {i['distance_a']:.3f}, to B {i['distance_b']:.3f} | mean "
            "distance to each gallery's nearest face; dlib calls two faces the same person below 0.6 |",
            f"| pose error | yaw {p['yaw']:.2f}°, pitch {p['pitch']:.2f}°, roll {p['roll']:.2f}°; "
            f"rotation {p['rotation']:.2f}° | swapped vs original head pose from the landmarks with "
            "`cv2.solvePnP` on a generic head (a stand-in for Hopenet); the rotation is the angle "
            "between the two head orientations |",
            f"| expression error | {s['expression_error']:.3f} | mean distance of the 51 inner landmarks "
            "after a similarity fit, over the inter-ocular distance (a stand-in for 3DMM expression "
            "coefficients) |",
        ]
    if "flicker" in s and s["flicker"]["ratio"] is not None:
        f = s["flicker"]
        out.append(f"| temporal flicker | {f['ratio']:.2f}x the original | mean frame-to-frame change "
                   f"inside the face hulls: {f['change_swapped']:.2f} swapped against "
                   f"{f['change_original']:.2f} original (of 255); below 1 can be blur as well as "
                   "steadiness |")
    if "background_psnr" in s:
        b = s["background_psnr"]
        out.append(f"| background PSNR | {_db(b['mean'])} (worst frame {_db(b['worst_frame'])}) | outside the "
                   "original faces' aligned crops, where the swap does not reach: the re-encoding's loss |")
    held = report.get("held_out")
    if held:
        out += [
            "",
            f"Held-out aligned faces (the last part of each clip, never trained on; {held['faces']['a']} of A, "
            f"{held['faces']['b']} of B), model at step {held['step']}:",
            "",
            "| | A | B |",
            "|---|---|---|",
            f"| swaps nearer the other person | A->B {held['identity/a_to_b_closer_to_b']:.0%} | "
            f"B->A {held['identity/b_to_a_closer_to_a']:.0%} |",
            f"| reconstruction PSNR (raw decoder RGB) | {held['reconstruction/psnr_a']:.2f} dB | "
            f"{held['reconstruction/psnr_b']:.2f} dB |",
            f"| reconstruction SSIM | {held['reconstruction/ssim_a']:.3f} | "
            f"{held['reconstruction/ssim_b']:.3f} |",
        ]
    out += ["", f"![original | swapped]({sheet_name})", "", "<details><summary>Per frame</summary>", "",
            "| frame | nearer | to A | to B | pose error (yaw, pitch, roll) | expression | background |",
            "|---|---|---|---|---|---|---|"]
    for entry in report["frames"]:
        background = "" if entry["background_psnr"] is None else _db(entry["background_psnr"])
        for face in entry["faces"] or [{"found": False}]:
            if face["found"]:
                errors = ", ".join(f"{v:.1f}" for v in face["pose_error"])
                out.append(f"| {entry['frame']} | {'B' if face['closer_to_b'] else 'A'} | "
                           f"{face['distance_a']:.3f} | {face['distance_b']:.3f} | {errors} | "
                           f"{face['expression_error']:.3f} | {background} |")
            else:
                out.append(f"| {entry['frame']} | no face | | | | | {background} |")
    out += ["", "</details>", ""]
    return "\n".join(out)
