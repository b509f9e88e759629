"""sma: video motion transfer with diffusion models and Spectral Motion Alignment."""

from importlib.metadata import PackageNotFoundError, version

from sma.motion import frame_residuals, predict_x0
from sma.spectral import SpectralMotionAlignment, SpectralMotionTerms

try:
    __version__ = version("sma")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["SpectralMotionAlignment", "SpectralMotionTerms", "__version__", "frame_residuals", "predict_x0"]
