"""The convert stage: an exported swapper applied to videos and images, frame by frame.

- `tracks.py`: faces followed from frame to frame, their landmarks smoothed over time;
- `blend.py`: colour transfer, mask erosion and feathering, pasting a face back (alpha or
  seamless cloning), the visible watermark;
- `video.py`: writing videos (ffmpeg: codec, CRF, the original audio, synthetic-media
  metadata) and images, always to a temporary file renamed at the end;
- `converter.py`: the per-frame work and the threaded pipeline around it;
- `backends.py`: where the swapper runs (this process, or TF Serving over REST or gRPC);
- `cli.py`: the flags; `python -m faceswap_tf.convert`, `faceswap-convert` and `tools/convert`.
"""
