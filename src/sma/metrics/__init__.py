"""Motion and appearance metrics for videos (docs/design.md §5). Nothing here knows of diffusion."""

from sma.metrics.motion_fidelity import MotionFidelity, motion_fidelity, track_correlation
from sma.metrics.tracking import LucasKanadeTracker, Tracker, Tracks, grid_points
from sma.metrics.trajectory import TrajectoryError, displacement_distances, trajectory_error

__all__ = [
    "LucasKanadeTracker",
    "MotionFidelity",
    "Tracker",
    "Tracks",
    "TrajectoryError",
    "displacement_distances",
    "grid_points",
    "motion_fidelity",
    "track_correlation",
    "trajectory_error",
]
