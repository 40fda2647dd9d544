"""Scores against labels: ROC, AUC, EER, the threshold chosen on validation data, accuracy,
false positives, and the same pooled over tracks (video level). NumPy only."""

import numpy as np


def auc(scores, labels) -> float:
    """Area under the ROC curve: the chance a random fake scores above a random real face
    (ties count half); NaN without both kinds."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    ranks[order] = _tied_ranks(values)
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _tied_ranks(sorted_values: np.ndarray) -> np.ndarray:
    ranks = np.arange(1, len(sorted_values) + 1, dtype=np.float64)
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        if count > 1:
            ranks[start:start + count] = start + (count + 1) / 2
    return ranks


def roc(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates, thresholds), thresholds falling."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    fpr = np.array([(scores[~labels] >= t).mean() for t in thresholds])
    tpr = np.array([(scores[labels] >= t).mean() for t in thresholds])
    return fpr, tpr, thresholds


def eer(scores, labels) -> float:
    """Equal error rate: where the false positive and false negative rates cross."""
    fpr, tpr, _ = roc(scores, labels)
    fnr = 1.0 - tpr
    i = int(np.argmin(np.abs(fpr - fnr)))
    return float((fpr[i] + fnr[i]) / 2)


def threshold_for(real_scores, max_false_positive: float, fake_scores=()) -> float:
    """A threshold at which at most `max_false_positive` of these real faces score at or above
    it (a face is judged fake at score >= threshold). Of the thresholds that allow that and
    catch the same fakes, the one in the middle of the gap in log-odds between the highest real
    score it must pass and the lowest fake score it catches, as a maximum-margin classifier
    would place it (the real faces the allowance let through may fall below it: fewer flagged).
    The lowest such threshold (where it stood before) passes the top real faces by a hair, so
    it flags a share of any new person's real faces near `max_false_positive` or above,
    however far the fakes lie from them. Without fakes above it, the lowest."""
    real = np.sort(np.asarray(real_scores, np.float64))
    if not len(real):
        return 0.5
    allowed = int(np.floor(max_false_positive * len(real)))
    passed = real[len(real) - allowed - 1]  # the highest real score the threshold must pass
    lowest = float(np.nextafter(passed, np.inf))
    fakes = np.asarray(fake_scores, np.float64)
    caught = fakes[fakes >= lowest]
    if not len(caught):
        return lowest
    weakest = caught.min()
    middle = _sigmoid((_logit(passed) + _logit(weakest)) / 2)
    return float(min(max(middle, lowest), weakest))


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def pooled(frame_scores) -> float:
    """A video's (or a track's) score from its frames': the median. Judged against the frame
    threshold it says whether at least half of the frames are flagged, so a video whose frames
    are flagged is never called real for a few lower ones: the mean of probabilities near 1,
    against a threshold near 1, did that (91% of a swap's frames flagged, the video "real")."""
    return float(np.median(np.asarray(frame_scores, np.float64))) if len(frame_scores) else 0.0


def summary(scores, labels, tracks, threshold: float) -> dict:
    """Frame and video-level figures of one group of faces; `tracks` a key per face, the
    track's score `pooled` from its faces'."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(int)
    by_track = {}
    for score, label, track in zip(scores, labels, tracks, strict=True):
        by_track.setdefault(track, (label, []))[1].append(score)
    video_scores = [pooled(s) for _, s in by_track.values()]
    video_labels = [label for label, _ in by_track.values()]
    real = scores[labels == 0]
    return {
        "faces": int(len(scores)), "fakes": int(labels.sum()), "tracks": len(by_track),
        "frame_auc": auc(scores, labels),
        "eer": eer(scores, labels) if 0 < labels.sum() < len(labels) else None,
        "accuracy": float(((scores >= threshold) == labels).mean()) if len(scores) else None,
        "false_positive_rate": float((real >= threshold).mean()) if len(real) else None,
        "true_positive_rate": float((scores[labels == 1] >= threshold).mean()) if labels.sum() else None,
        "video_auc": auc(video_scores, video_labels),
    }


def roc_image(scores, labels, size: int = 256) -> np.ndarray:
    """uint8 [size, size, 3]: the ROC curve drawn on a unit square (TensorBoard's image tab)."""
    import cv2

    fpr, tpr, _ = roc(scores, labels)
    image = np.full((size, size, 3), 255, np.uint8)
    cv2.line(image, (0, size - 1), (size - 1, 0), (200, 200, 200), 1)
    points = np.stack([fpr * (size - 1), (1 - tpr) * (size - 1)], axis=1).round().astype(np.int32)
    cv2.polylines(image, [points], False, (200, 40, 40), 2)
    cv2.putText(image, f"AUC {auc(scores, labels):.3f}", (size // 2 - 20, size - 12), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return image
