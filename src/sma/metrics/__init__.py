"""Motion and appearance metrics for videos (docs/design.md §5). Nothing here knows of diffusion."""

from sma.metrics.flow import FlowTracker, VideoFlow, video_flow
from sma.metrics.flow_metrics import FlowSimilarity, flow_similarity, motion_magnitude, warping_error
from sma.metrics.ground_truth import CameraError, camera_error, camera_motion, colour_leakage, texture_leakage
from sma.metrics.motion_fidelity import MotionFidelity, motion_fidelity, robust_motion_fidelity, track_correlation
from sma.metrics.tracking import LucasKanadeTracker, Tracker, Tracks, grid_points
from sma.metrics.trajectory import (
    TrajectoryError,
    colour_trajectory_error,
    displacement_distances,
    trajectory_error,
)

__all__ = [
    "CameraError",
    "FlowSimilarity",
    "FlowTracker",
    "LucasKanadeTracker",
    "MotionFidelity",
    "Tracker",
    "Tracks",
    "TrajectoryError",
    "VideoFlow",
    "camera_error",
    "camera_motion",
    "colour_leakage",
    "colour_trajectory_error",
    "displacement_distances",
    "flow_similarity",
    "grid_points",
    "motion_fidelity",
    "motion_magnitude",
    "robust_motion_fidelity",
    "texture_leakage",
    "track_correlation",
    "trajectory_error",
    "video_flow",
    "warping_error",
]
