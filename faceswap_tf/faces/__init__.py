"""Faces in images: detection and landmarks, alignment, masks, pose, identity, selection, and the
alignments file."""
