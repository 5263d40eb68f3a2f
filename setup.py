"""Installable BasicSR plugin: DMTNet and its dual-pixel data, model and metrics."""

from setuptools import find_packages, setup

setup(
    name='dmtnet_arch',
    version='0.1.0',
    description='DMTNet dual-pixel defocus deblurring as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['dmtnet_arch', 'dmtnet_arch.*']),
    python_requires='>=3.10',
    install_requires=[
        'basicsr==1.4.2',
        'torch',
        'torchvision',
        'lmdb',
        'opencv-python',
        'pyyaml',
        'scikit-image',
        'tb-nightly',
    ],
    extras_require={'dev': ['pytest', 'ruff']},
)
