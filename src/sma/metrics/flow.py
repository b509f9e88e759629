"""Dense optical flow (OpenCV's DIS, no weights) and point tracks chained through it.

DIS (Kroeger et al. 2016) is classical: nothing to download, fast on a CPU, and its
coarse-to-fine search follows large motions. Flow is computed on grey frames at a working
size (the longer side at most `max_side` pixels, 128 by default), which makes the flow metrics faster and
nearly independent of the resolution a video was saved at: at 256 a textured object moving 8 px a frame
lost its tracks in one encoding of the same frames and kept them in another (docs/results.md, metric
card), at 128 both kept them. A flow field is (h, w, 2): the
(dx, dy) in working pixels that carries each pixel of one frame to the next.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sma.metrics.tracking import Tracks, inside_frame
from sma.video.errors import VideoError
from sma.video.frames import as_frames, resize_frames

SLACK_SIDE = 64  # the frame side `FlowTracker.slack` is given for: the embedded worlds' clips, scored as before

# what flow is computed on: grey (luminance), or CIELAB's red-green (a*) and blue-yellow (b*) channels, in which an
# object whose grey matches its ground (green on gray) stands out and achromatic stripes, which bind DIS to their edges,
# vanish (`robust_motion_fidelity`'s fallback)
CHANNELS = {"grey": None, "a*": 1, "b*": 2}

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class VideoFlow:
    """A video at its working size with its flows: forward[k] carries frame k to k+1, backward[k] k+1 to k.

    source_size: (height, width) of the video given; max_side, preset and channel (of CHANNELS): how the flow was made.
    Compute it once with `video_flow` and pass it to several flow metrics to share the work.
    """

    frames: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    source_size: tuple[int, int]
    max_side: int
    preset: str
    channel: str = "grey"

    @property
    def diagonal(self) -> float:
        """Of the working frames, in working pixels."""
        return float(np.hypot(*self.frames.shape[1:3]))


def video_flow(
    video: np.ndarray | torch.Tensor | VideoFlow, max_side: int = 128, preset: str = "medium", channel: str = "grey"
) -> VideoFlow:
    """Forward and backward DIS flow of uint8 frames (f, h, w, 3) or a [-1, 1] tensor (a VideoFlow passes through),
    computed on one `channel` of CHANNELS."""
    if isinstance(video, VideoFlow):
        return video
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    frames = as_frames(video)
    if len(frames) < 2:
        raise ValueError("optical flow needs at least 2 frames")
    source_size = frames.shape[1:3]
    scale = min(1.0, max_side / max(source_size))
    if scale < 1.0:
        working = tuple(max(1, round(side * scale)) for side in source_size)
        frames = resize_frames(frames, working, fit="stretch")
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    planes = [_plane(frame, channel) for frame in frames]
    forward = np.stack([dis.calc(first, second, None) for first, second in itertools.pairwise(planes)])
    backward = np.stack([dis.calc(second, first, None) for first, second in itertools.pairwise(planes)])
    return VideoFlow(frames, forward, backward, source_size, max_side, preset, channel)


def _plane(frame: np.ndarray, channel: str) -> np.ndarray:
    """The (h, w) uint8 image DIS reads of an RGB frame: its grey or one CIELAB channel."""
    if CHANNELS[channel] is None:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_RGB2LAB)[..., CHANNELS[channel]])


def check_frame_counts(reference: int, generated: int) -> None:
    """Metrics that compare two videos frame by frame need as many frames in both, and at least 2."""
    if reference != generated:
        raise VideoError(
            f"the reference has {reference} frames and the generated video {generated}; "
            "read both with the same number of frames"
        )
    if reference < 2:
        raise VideoError("motion metrics need at least 2 frames")


def sample(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(n, c) values of an (h, w, c) float32 field at (n, 2) points (x, y), bilinear, edges repeated."""
    count, width = len(points), 1024  # OpenCV maps must be under 32767 rows: lay the points out in rows
    padded = np.zeros((-(-count // width) * width, 2), np.float32)
    padded[:count] = points
    grid = padded.reshape(-1, width, 2)
    values = cv2.remap(field, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return values.reshape(len(padded), -1)[:count]


def consistent(forward: np.ndarray, backward: np.ndarray, tolerance: float = 0.01, slack: float = 0.7) -> np.ndarray:
    """Forward-backward check of forward flows w (n, 2) against the backward flows w' where they land (n, 2):
    |w + w'|^2 <= tolerance (|w|^2 + |w'|^2) + slack^2 (Sundaram et al. 2010 use 0.01 and 0.5 px^2)."""
    mismatch = np.sum((forward + backward) ** 2, axis=-1)
    return mismatch <= tolerance * (np.sum(forward**2, -1) + np.sum(backward**2, -1)) + slack**2


@dataclass(frozen=True)
class FlowTracker:
    """Points carried frame to frame by dense DIS flow; a point is lost from the first step that fails the
    forward-backward check (`consistent`) or leaves the frame. Tracks are in working pixels.

    `slack` is in pixels of a frame whose longer side is 64 (`SLACK_SIDE`) and grows with the working frame: DIS's
    error on a scene's untextured insides and aperture-bound stripes grows with the motion in pixels, so a fixed
    0.7 px lost every track of a triangle circling over panning stripes at 128 px and kept 150 at 64 px."""

    preset: str = "medium"
    max_side: int = 128
    tolerance: float = 0.01
    slack: float = 0.7

    @property
    def name(self) -> str:
        return (
            f"dis flow (opencv {self.preset}, at most {self.max_side} px, "
            f"forward-backward {self.tolerance} |w|^2 + {self.slack} px per {SLACK_SIDE} px)"
        )

    def track(self, frames: np.ndarray, points: np.ndarray) -> Tracks:
        """Follow `points` given in pixels of `frames` (f, h, w, 3); positions come back in the same pixels."""
        flow = video_flow(frames, self.max_side, self.preset)
        scale = np.array([flow.frames.shape[2] / frames.shape[2], flow.frames.shape[1] / frames.shape[1]], np.float32)
        tracks = self.chain(flow, points * scale)
        return Tracks(positions=tracks.positions / scale, valid=tracks.valid)

    def chain(self, flow: VideoFlow, points: np.ndarray) -> Tracks:
        """Follow `points` given in working pixels of `flow` through its flows; positions in working pixels."""
        height, width = flow.frames.shape[1:3]
        slack = self.slack * max(height, width) / SLACK_SIDE
        positions = np.zeros((len(points), len(flow.frames), 2), np.float32)
        valid = np.zeros(positions.shape[:2], bool)
        positions[:, 0], valid[:, 0] = points, True
        for step in range(len(flow.forward)):
            ahead = sample(flow.forward[step], positions[:, step])
            landed = positions[:, step] + ahead
            back = sample(flow.backward[step], landed)
            positions[:, step + 1] = landed
            kept = inside_frame(landed, height, width) & consistent(ahead, back, self.tolerance, slack)
            valid[:, step + 1] = valid[:, step] & kept
        return Tracks(positions=positions, valid=valid)
