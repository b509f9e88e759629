"""Frequency-domain motion losses; pure tensor math on torch and PyWavelets filter banks."""

from sma.spectral.loss import SpectralMotionAlignment, SpectralMotionTerms, global_motion_loss, local_motion_loss

__all__ = ["SpectralMotionAlignment", "SpectralMotionTerms", "global_motion_loss", "local_motion_loss"]
