"""Installs pixelcnnpp: autoregressive image models in TensorFlow 2."""

import setuptools

setuptools.setup(
    name="pixelcnnpp",
    version="0.1.0",
    description=("PixelCNN++, Gated PixelCNN and masked PixelCNN in "
                 "TensorFlow 2, with fast cached sampling."),
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["pixelcnnpp", "pixelcnnpp.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        # TFP 0.25 refuses to import without tf_keras, although the parts
        # used here (distributions) do not use it.
        "tensorflow-probability>=0.25,<0.26",
        "tf-keras>=2.21,<2.22",
        "tensorflow-datasets>=4.9",
        "absl-py>=2.0",
        "numpy>=1.26",
        "pillow>=10.0",
        "tensorboard>=2.20",
        "tqdm>=4.60",
        # TFDS needs it to download, but does not declare it.
        "importlib_resources>=6.0",
    ],
    extras_require={
        "test": ["pytest>=8.0", "pytest-xdist>=3.0"],
        "plot": ["matplotlib>=3.8"],
        # The photographs that benchmarks/photo_patches.py cuts up.
        "photos": ["scikit-image>=0.22"],
    },
)
