"""Packaging for catface-keras."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="catface-keras",
    version="0.1.0",
    description=(
        "CATFace (arXiv 2401.03037): cross-attribute-guided transformer with "
        "self-attention distillation for low-quality face recognition, in Keras 3."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["catface_keras", "catface_keras.*"]),
    # The `catface` console script: starts the CLI without registering the models up front
    # (see catface_keras/__init__.py).
    py_modules=["catface_command"],
    install_requires=[
        "keras>=3.10,<4",
        "numpy>=1.26",
        "pyyaml>=6",
        "opencv-python-headless>=4.8",
        "tqdm>=4.60",
        "h5py>=3.10",
        "tf-keras-vis>=0.8.7",
        "matplotlib>=3.7",
        # Face detection and landmarks for `catface align|embed|verify`; its wheel
        # ships the weights (no download). joblib and lz4 are its own requirements.
        "mtcnn>=1.0,<2",
    ],
    extras_require={
        # TensorFlow is an extra so one package serves CPU-only and CUDA machines.
        "cpu": ["tensorflow-cpu>=2.16", "tensorboard>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16", "tensorboard>=2.16"],
        # torch only builds the reference PyTorch iResNets in tests/weights; the
        # package reads checkpoints without it.
        "dev": ["pytest>=7", "scikit-learn>=1.3", "torch>=2.1"],
        # `catface export --format onnx`: tf2onnx converts, onnxruntime checks the file.
        "onnx": ["tf2onnx>=1.16", "onnx>=1.16", "onnxruntime>=1.18"],
        # `catface export --format litert`: the LiteRT interpreter checks the file (the
        # converter is TensorFlow's).
        "litert": ["ai-edge-litert>=1.2"],
    },
    entry_points={"console_scripts": ["catface=catface_command:main"]},
)
