"""Installable BasicSR plugin: DMTNet and its dual-pixel data, model and metrics."""

import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

STARTUP_HOOK = 'dmtnet_arch.pth'
VERSION = re.search(r"__version__ = '([^']+)'", Path('dmtnet_arch/version.py').read_text())[1]


class BuildWithStartupHook(build_py):
    """Put ``dmtnet_arch.pth`` at the wheel's root so site-packages runs ``dmtnet_arch_startup`` at start-up."""

    def run(self):
        super().run()
        self.copy_file(STARTUP_HOOK, str(Path(self.build_lib) / STARTUP_HOOK))


setup(
    name='dmtnet_arch',
    version=VERSION,
    description='DMTNet dual-pixel defocus deblurring as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['dmtnet_arch', 'dmtnet_arch.*']),
    # the built-in checkpoints (dmtnet_arch/utils/checkpoint.py) and the paper's Table 1 (tools/published.py)
    package_data={'dmtnet_arch': ['weights/*.pth', 'tools/*.csv']},
    py_modules=['dmtnet_arch_startup'],
    cmdclass={'build_py': BuildWithStartupHook},
    python_requires='>=3.10',
    install_requires=[
        'basicsr==1.4.2',
        'torch',
        'torchvision',
        'h5py',  # DPDNet's Keras weights (scripts/convert_dpdnet_keras.py)
        'lmdb',
        'matplotlib',
        'opencv-python',
        'pyyaml',
        'scikit-image',
        'tb-nightly',
    ],
    extras_require={'dev': ['pytest', 'ruff'], 'export': ['onnx', 'onnxruntime'], 'video': ['av']},
)
