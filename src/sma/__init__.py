"""sma: video motion transfer with diffusion models and Spectral Motion Alignment."""

import importlib
import os
from importlib.metadata import PackageNotFoundError, version

# Before torch loads (OpenMP reads it then), unless set: OpenMP threads waiting for work sleep instead of spinning.
# Spinning threads take the cores other processes need: beside other work a step slowed 20-45x
# (benchmarks/cpu_load.py measures it; docs/performance.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("sma")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

# imported on first use (PEP 562): they need torch, which `sma --help` and the command line's early errors do not
_LAZY = {
    "SpectralMotionAlignment": "sma.spectral",
    "SpectralMotionTerms": "sma.spectral",
    "frame_residuals": "sma.motion",
    "predict_x0": "sma.motion",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sma' has no attribute {name!r}")


__all__ = ["SpectralMotionAlignment", "SpectralMotionTerms", "__version__", "frame_residuals", "predict_x0"]
