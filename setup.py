"""faceswap-tf: face swapping with an autoencoder GAN in TensorFlow/Keras."""

from setuptools import find_packages, setup

setup(
    name="faceswap-tf",
    version="0.1.0",
    description="Face swapping with an autoencoder GAN (faceswap-GAN design) in TensorFlow/Keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["faceswap_tf", "faceswap_tf.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "opencv-python-headless>=4.8",
        "dlib-bin>=19.24",  # the dlib module, prebuilt: no compiler or cmake needed
        "face_recognition_models>=0.3.0",  # dlib's landmark, CNN-detector and descriptor models
        "numpy>=1.26",
        # TensorFlow's bfloat16 and float8 types. 0.7.0's extension takes about 1 s to initialise
        # on import against 6 ms for 0.6.0 (measured, -X importtime): a second of every command.
        "ml_dtypes>=0.5.1,<0.7",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.5",
        "absl-py>=2.0",
        "tensorboard>=2.16",  # tf.summary writes through it; TF no longer pulls it in
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "serving": ["tensorflow-serving-api>=2.16"],  # the gRPC client of tools/convert
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "tensorflow-serving-api>=2.16"],
    },
    entry_points={
        "console_scripts": [
            "faceswap-extract=faceswap_tf.extract:run",
            "faceswap-train=faceswap_tf.train:run",
            "faceswap-export=faceswap_tf.export:run",
            "faceswap-convert=faceswap_tf.convert.cli:run",
            "faceswap-coverage=faceswap_tf.coverage:run",
            "faceswap-evaluate=faceswap_tf.evaluate:run",
            "faceswap-detect-data=faceswap_tf.detect.dataset:run",
            "faceswap-detect=faceswap_tf.detect.__main__:run",
            "faceswap-detect-export=faceswap_tf.detect.export:run",
            "faceswap-detect-score=faceswap_tf.detect.score:run",
        ],
    },
)
