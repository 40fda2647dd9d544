"""The evaluation report as people read it: the Markdown report (verdict table first), the
lines printed at the end of a run, and the contact sheet. `evaluator.py` measures; this
renders."""

import math
import os

import cv2
import numpy as np

COLUMNS = (("swapped", "this swap"), ("unmodified", "unmodified (JPEG q90)"), ("still", "still B paste"),
           ("jittered", "jittering B paste"), ("ceiling", "A at the model's resolution"))
_PERCENT = {"identity"}
_DEGREES = {"pose_rotation"}
_DECIBELS = {"background_psnr"}


def value_text(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key in _PERCENT:
        return f"{value:.0%}"
    if key in _DEGREES:
        return f"{value:.1f}°"
    if key in _DECIBELS:
        return "identical" if math.isinf(value) else f"{value:.1f} dB"
    return f"{value:.2f}"


def _mark(passes) -> str:
    return {True: "pass", False: "**FAIL**", None: ""}[passes]


def verdict_table(results: dict) -> list[str]:
    names = [(key, title) for key, title in COLUMNS
             if any(row.get(key) is not None for row in results["verdict"])]
    lines = ["| measure | band | " + " | ".join(title for _, title in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for row in results["verdict"]:
        cells = [f"{value_text(row['key'], row[key])} {_mark(row[f'{key}_passes'])}" for key, _ in names]
        cells[0] = f"**{value_text(row['key'], row['swapped'])}** {_mark(row['swapped_passes'])}"
        lines.append(f"| {row['label']} | {row['band']} | " + " | ".join(cells) + " |")
    return lines


def failed(results: dict, column: str = "swapped") -> list[str]:
    return [row["short"] for row in results["verdict"] if row.get(f"{column}_passes") is False]


def pose_coverage_sentence(swapped: dict) -> str | None:
    """The swap's pose error where B's training faces cover A's head pose and where they do not."""
    covered, beyond = swapped.get("pose_faces_covered"), swapped.get("pose_faces_beyond")
    if not covered and not beyond:
        return None

    def error(key):
        value = swapped.get(f"pose_rotation_{key}")
        return "n/a" if value is None else f"{value:.1f}°"

    return (f"Head pose error where A's yaw and pitch stay within B's training faces' (1st to 99th "
            f"percentile): {error('covered')} over {covered} faces; beyond them, where B's footage shows no "
            f"such pose to learn from: {error('beyond')} over {beyond} faces.")


def summary_lines(results: dict) -> list[str]:
    """What a run prints at its end: the verdict, band by band, for the swap."""
    split = results["verdict_on"].replace("_", "-")
    summary = results["summary"][results["verdict_on"]]
    lines = [f"{summary['frames']} {split} frames, {summary['faces']} faces in the original, "
             f"{summary['faces_found_in_swapped']} found in the swapped video"]
    for row in results["verdict"]:
        controls = ", ".join(f"{title.split(' (')[0]} {value_text(row['key'], row[key])}"
                             for key, title in COLUMNS[1:] if row.get(key) is not None)
        lines.append(f"  {_mark(row['swapped_passes']).strip('*') or 'n/a':4s}  {row['label']}: "
                     f"{value_text(row['key'], row['swapped'])} (band {row['band']}"
                     + (f"; {controls}" if controls else "") + ")")
    pose_split = pose_coverage_sentence(summary.get("swapped", {}))
    if pose_split:
        lines.append("  " + pose_split)
    bad = failed(results)
    lines.append("verdict: " + ("meets every band" if not bad else
                                f"fails {len(bad)} of {len(results['verdict'])} bands ({', '.join(bad)})"))
    return lines


def markdown(results: dict, sheet_name: str) -> str:
    inputs = results["inputs"]
    split = results["verdict_on"]
    summaries = results["summary"]
    label = inputs["swapped_metadata"].get("synthetic_media") == "true"
    bad = failed(results)
    out = [
        f"# Evaluation of {os.path.basename(inputs['swapped'])}",
        "",
        f"**Verdict: {'meets every band' if not bad else 'fails ' + ', '.join(bad)}** "
        f"(on the {summaries[split]['frames']} {split.replace('_', '-')} frames).",
        "",
        *verdict_table(results),
        "",
        "Each measure is taken on the swap and, for scale, on controls made from the same original "
        "frames: the original through a JPEG round trip (what encoding alone costs), one face of B pasted "
        "still on every frame with the converter's own colour matching and blending (perfect identity, no "
        "expression), and that paste jittered by a few percent every frame. A measure that the still or the "
        "jittering paste passes cannot tell a good swap from a bad one on its own."
        + (" With the model's run (`--model_dir`), a fourth: A's own face reduced to the network's view at its "
           "resolution and pasted back (the ceiling: a perfect model of that size; identity and own "
           "features aside, as it is A's face, where the swap falls short of it the model is at fault, and a "
           "band the ceiling fails no model of that size meets)."
           if any(row.get("ceiling") is not None for row in results["verdict"]) else ""),
        "",
        "- **identity**: the swapped face's dlib 128-D descriptor (a stand-in for ArcFace/CosFace) is "
        f"retrieved among the galleries of A ({inputs['galleries']['a']}), B ({inputs['galleries']['b']}) and "
        f"{len(inputs['galleries']['distractors'])} other people"
        + (f" ({', '.join(inputs['galleries']['distractors'])})" if inputs["galleries"]["distractors"] else
           " (none given: `--distractors`)")
        + "; a face counts when B's gallery is the nearest and within dlib's same-person distance, 0.6. A face "
        "not found again in the swapped frame counts against it.",
        "- **mouth and eyes**: mouth opening (the inner lips' gap) and eye aperture (the eyelids' gap), both "
        "over the eye span, of the swapped face against the original's, frame by frame: their correlation, "
        "and the gain, the least-squares slope (1: opens as far as A's; 0: does not move).",
        "- **motion**: the 51 inner landmarks of the swapped face in the original face's aligned frame (the "
        "head's own movement taken out), frame to frame against the original's: the correlation of the two "
        "velocity fields and the ratio of their speeds. A still paste does not move with the face; a jittering "
        "one moves on its own.",
        "- **detail**: three octaves of detail (differences of Gaussians, sized to the face) inside the inner "
        "face, swapped over original; the octave furthest off, as min(r, 1/r): blur and noise or a sharpening "
        "halo both score low. Per octave (finest first): "
        + ", ".join(f"{key} {' / '.join(f'{r:.2f}' for r in summaries[split][key]['detail_ratios'])}"
                    for key, _ in COLUMNS if key in summaries[split]) + ".",
        "- **colour, seam and edge flicker**: both frames cut to the original face's aligned crop, taken to "
        "CIE L*a*b* and averaged over the skin (the face's hull without eyes, brows, nostrils and mouth) at a "
        "tenth of the eye span, finer than lighting and coarser than skin texture; the distance ΔE*ab of "
        "swap to original (2.3 is about one just-noticeable difference): its median over the skin (a face of "
        "another tone or lighting), its 90th percentile within a quarter of the eye span of the face's edge "
        "(a seam or dark blotches where the face meets the frame), and how much that edge changes from one "
        "frame to the next (a mask or colour that flickers; the jittering paste fails it).",
        "- **head pose**: `cv2.solvePnP` of the landmarks on a generic head (a stand-in for Hopenet); the "
        "angle of the rotation between the two poses. It carries some of the two faces' difference in shape, "
        "so even a perfect swap to another person shows a little.",
        "- **background**: PSNR outside the aligned crops of the faces, where a swap does not reach.",
        "",
        "## Inputs",
        "",
        f"- Swapped video: `{inputs['swapped']}`: {inputs['frames']} frames, made from frames "
        f"{inputs['first_frame']}-{inputs['first_frame'] + inputs['frames'] - 1} of `{inputs['original']}`"
        + (" (**the pairing is ambiguous**: another stretch matches about as well)"
           if inputs["frame_match"]["ambiguous"] else "") + ".",
        f"- Synthetic-media label in its metadata: {'present' if label else '**absent**'}"
        + (f" ({inputs['swapped_metadata'].get('generator_model')})" if label else "") + ".",
        "- Frames the model trained on: " + _split_sentence(results),
        "",
    ]
    closed = results["mouth_most_closed"]
    if closed:
        out += ["## Where the swapped mouth falls furthest short", "",
                "| frame | mouth opening of A | of the swap |", "|---|---|---|"]
        out += [f"| {c['frame']} | {c['original']:.2f} | {c['swapped']:.2f} |" for c in closed]
        out.append("")
    out += [f"## Does B's training footage cover what A does? ({results['coverage']['b']} against "
            f"{results['coverage']['a']})", "", *results["coverage"]["lines"], ""]
    pose_split = pose_coverage_sentence(summaries[split].get("swapped", {}))
    if pose_split:
        out += [pose_split, ""]
    held = results.get("held_out_model")
    if held:
        out += [
            f"## The model on held-out aligned faces (step {held['step']}; {held['faces']['a']} of A, "
            f"{held['faces']['b']} of B, never trained on)",
            "",
            "| | A | B |",
            "|---|---|---|",
            "| swaps nearer the other person (between A and B only) | "
            f"A->B {held['identity/a_to_b_closer_to_b']:.0%} | "
            f"B->A {held['identity/b_to_a_closer_to_a']:.0%} |",
            f"| reconstruction PSNR (raw decoder RGB) | {held['reconstruction/psnr_a']:.2f} dB | "
            f"{held['reconstruction/psnr_b']:.2f} dB |",
            f"| reconstruction SSIM | {held['reconstruction/ssim_a']:.3f} | "
            f"{held['reconstruction/ssim_b']:.3f} |",
            "",
        ]
    out += ["## Contact sheet", "", f"![original | swapped]({sheet_name})", "",
            "<details><summary>Per frame</summary>", "",
            "| frame | held out | nearest | to B | mouth A / swap | eyes A / swap | detail | pose error | "
            "background |", "|---|---|---|---|---|---|---|---|---|"]
    for entry in results["frames"]:
        background = value_text("background_psnr", entry.get("background_psnr_swapped"))
        held_out = {True: "yes", False: "**no**", None: "?"}[entry["held_out"]]
        for face in entry["faces"] or [None]:
            swap = face.get("swapped") if face else None
            if not swap:
                missing = "no face" if face is None else "not found"
                out.append(f"| {entry['frame']} | {held_out} | {missing} | | | | | | {background} |")
                continue
            out.append(f"| {entry['frame']} | {held_out} | {_who(swap.get('nearest'))} | "
                       f"{swap.get('distance_b', math.nan):.2f} | "
                       f"{face['original']['mouth']:.2f} / {swap['mouth']:.2f} | "
                       f"{face['original']['eyes']:.2f} / {swap['eyes']:.2f} | {swap['sharpness']:.2f} | "
                       f"{swap['pose_error']:.1f}° | {background} |")
    out += ["", "</details>", ""]
    return "\n".join(out)


def _who(nearest) -> str:
    return {None: "?", "a": "A", "b": "B"}.get(nearest, str(nearest).removeprefix("other:"))


def _split_sentence(results: dict) -> str:
    summaries = results["summary"]
    if summaries["training"]["frames"]:
        return (f"**{summaries['training']['frames']} of the evaluated frames are training frames** (the model "
                "learnt them): they are left out of the verdict.")
    if summaries["held_out"]["frames"]:
        return "none: every evaluated frame was held out of training."
    if results["inputs"]["holdout_known"]:
        return "the model never trained on this video."
    return "unknown (no --model_dir, and A's faces do not come from this video)."


# --- the contact sheet --------------------------------------------------------------------

def contact_sheet(rows: list, height: int = 240) -> np.ndarray:
    """RGB image: per row a label, then the original frame | the swapped frame. The label reads
    `frame: mouth A>swap eyes A>swap detail nearest-person distance-to-B`; rows where the
    swapped mouth falls furthest short of the original's are marked and in red."""
    lines = []
    for entry, source, swapped, short in rows:
        scale = height / source.shape[0]
        size = (int(round(source.shape[1] * scale)), height)
        pair = np.hstack([cv2.resize(source, size, interpolation=cv2.INTER_AREA),
                          np.full((height, 4, 3), 255, np.uint8),
                          cv2.resize(swapped, size, interpolation=cv2.INTER_AREA)])
        label = np.full((22, pair.shape[1], 3), 255, np.uint8)
        cv2.putText(label, _row_label(entry, short), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (160, 0, 0) if short else (0, 0, 0), 1, cv2.LINE_AA)
        lines += [label, pair, np.full((6, pair.shape[1], 3), 255, np.uint8)]
    header = np.full((26, lines[0].shape[1], 3), 255, np.uint8)
    cv2.putText(header, "original | swapped (synthetic media)", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                (0, 0, 0), 1, cv2.LINE_AA)
    legend = np.full((20, lines[0].shape[1], 3), 255, np.uint8)
    cv2.putText(legend, "frame: mouth A>swap, eyes A>swap, detail, nearest & dist. to B", (4, 14),
                cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
    return np.vstack([header, legend, *lines])


def _row_label(entry: dict, short: bool) -> str:
    faces = [face for face in entry["faces"] if "swapped" in face]
    if not entry["faces"]:
        return f"frame {entry['frame']}: no face in the original"
    if not faces:
        return f"frame {entry['frame']}: no face found in the swapped frame"
    face = faces[0]
    swap = face["swapped"]
    text = (f"{entry['frame']}: mouth {face['original']['mouth']:.2f}>{swap['mouth']:.2f} "
            f"eyes {face['original']['eyes']:.2f}>{swap['eyes']:.2f} detail {swap['sharpness']:.2f}")
    if "nearest" in swap:
        text += f" {_who(swap['nearest'])} {swap['distance_b']:.2f}"
    return text + (" MOUTH SHORT" if short else "")
