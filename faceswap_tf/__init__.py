"""faceswap-tf: face swapping with an autoencoder GAN in TensorFlow/Keras.

The stages live in one place each: `faces/` and `extract.py` (aligned faces from video),
`train.py` (the GAN), `export.py` (SavedModel), `convert/` (videos). Importing the package
imports no TensorFlow, so the extract stage starts fast.
"""

__version__ = "0.1.0"
