from setuptools import find_packages, setup

setup(
    name="panext_d2",
    version="0.1.0",
    description="PaNeXt, SSD-ISB and encoder-decoder segmenters as a detectron2 extension",
    packages=find_packages(include=["panext_d2", "panext_d2.*"]),
    python_requires=">=3.10",
    # detectron2 and torch are deliberately not listed: a source build of detectron2 must be
    # kept, and torch's build (CPU/CUDA) is the user's choice. tools/setup_env.sh pins them.
    install_requires=[
        "numpy<2",
        "fvcore",
        "iopath",
        "pycocotools",
        "panopticapi-lite",
        "timm>=1.0",
        "pytorch-optimizer>=3.0",
        "opencv-python-headless",
    ],
)
