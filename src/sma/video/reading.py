"""Reading videos: containers through PyAV, gifs and folders of frames through Pillow.

Every failure is a `VideoError` subclass with a one-line message that names the file and,
where it can, the option that helps.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageSequence, UnidentifiedImageError

from sma.video.errors import (
    CorruptVideoError,
    DamagedVideoWarning,
    NoFramesError,
    NotAVideoError,
    TooFewFramesError,
    VideoTooLargeError,
)
from sma.video.files import IMAGE_SUFFIXES, existing, natural_key
from sma.video.frames import frames_to_tensor, resize_frames

# First bytes of the containers we read: a file that starts like one but fails is corrupt, not foreign.
_SIGNATURES = (b"GIF8", b"RIFF", b"\x1a\x45\xdf\xa3")
# FFmpeg formats that open but are not videos: text shown as ANSI art, and single images.
_STILL_FORMATS = ("tty", "image2", "image2pipe")
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free")
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I")  # Pillow's modes of 16-bit grey images, scaled 0..65535 -> 0..255
# The most pixels one read decodes (~3 GB of RGB frames, e.g. 512 frames of 1080p): a file whose header declares more
# for what is asked (a 23 KB gif of 1,000 4096x4096 frames) is refused before decoding, one that decodes more than it
# declared, when it gets there.
MAX_DECODED_PIXELS = 2**30


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds before any selection: frame count (None if the container does not say), fps, size."""

    frames: int | None
    fps: float | None
    height: int
    width: int


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    *,
    stride: int = 1,
    fps: float | None = None,
    start: int = 0,
    size: tuple[int, int] | None = None,
    fit: str = "crop",
) -> np.ndarray:
    """Read frames as uint8 (f, h, w, 3) RGB.

    `num_frames` frames (all when None) from source frame `start`, taking every `stride`-th
    frame, or resampling to `fps` frames per second when given (needs a source frame rate).
    `size` = (height, width) resizes with `fit` = crop (default), pad or stretch.
    """
    path = Path(path)
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, not {num_frames}")
    if stride < 1 or start < 0:
        raise ValueError(f"stride must be >= 1 and start >= 0, got stride={stride}, start={start}")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    step = float(stride)
    if fps is not None:
        source_fps = probe_video(path).fps
        if not source_fps:
            raise NotAVideoError(
                f"{path} has no frame rate (a folder of frames); select frames with stride instead of fps"
            )
        step = source_fps / fps

    needed = start + round((num_frames - 1) * step) + 1 if num_frames is not None else None
    selected, decoded = [], 0
    wanted = start
    for index, frame in enumerate(_decode(path, needed)):
        decoded = index + 1
        if decoded * frame.shape[0] * frame.shape[1] > MAX_DECODED_PIXELS:
            raise _too_large(path, decoded, *frame.shape[:2], "more than it declared")
        while round(wanted) == index and (num_frames is None or len(selected) < num_frames):
            selected.append(frame if size is None else resize_frames(frame[None], size, fit)[0])  # one at a time
            wanted = start + len(selected) * step
        if num_frames is not None and len(selected) == num_frames:
            break
    if decoded == 0:
        raise NoFramesError(f"{path} holds no decodable frame")
    if not selected or (num_frames is not None and len(selected) < num_frames):
        declared = probe_video(path).frames
        if declared and decoded < declared:
            raise CorruptVideoError(f"{path} is truncated: it declares {declared} frames but only {decoded} decode")
        raise TooFewFramesError(_too_few_message(path, decoded, num_frames or 1, step, start, fps is not None))
    return np.stack(selected)


def read_video_tensor(path: str | os.PathLike, num_frames: int | None = None, **selection) -> torch.Tensor:
    """Read a video as a float32 tensor (1, 3, f, h, w) in [-1, 1]; same options as `read_video`."""
    return frames_to_tensor(read_video(path, num_frames, **selection))


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate and size without decoding the whole video."""
    path = existing(path)
    if path.is_dir():
        files = frame_files(path)
        width, height = _open_image(files[0]).size
        return VideoInfo(frames=len(files), fps=None, height=height, width=width)
    if path.suffix.lower() == ".gif":
        durations, base, (width, height) = _gif_timing(path)
        count = sum(max(1, round(duration / base)) for duration in durations)
        return VideoInfo(count, 1000.0 / base, height, width)
    with _open_container(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(stream.frames or None, rate, stream.codec_context.height, stream.codec_context.width)


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frame folder in natural order: 2.png before 10.png."""
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise NoFramesError(f"{folder} holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _too_few_message(path: Path, total: int, num_frames: int, step: float, start: int, by_fps: bool) -> str:
    available = 0 if start >= total else int((total - 1 - start) // step) + 1
    spacing = f"at {step:g} source frames per frame (fps)" if by_fps else f"with stride {step:g}"
    return (
        f"{path} has {total} frames; {num_frames} frames from frame {start} {spacing} need "
        f"{start + round((num_frames - 1) * step) + 1}. Ask for at most {available} frames, "
        f"or lower the {'fps' if by_fps else 'stride'} or the start"
    )


def _too_large(path: Path, frames: int, height: int, width: int, how: str) -> VideoTooLargeError:
    return VideoTooLargeError(
        f"{path}: decoding {frames} frames of {width}x{height} ({how}) is over the {MAX_DECODED_PIXELS:,} pixels sma "
        "decodes from one video (a decompression bomb?); cut or scale it down first, or ask for fewer frames"
    )


def _decode(path: Path, needed: int | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 RGB frames one by one, in order, from whatever the path holds; `needed` (None: all) is how many
    the caller reads at most, checked against what the file declares before anything decodes."""
    path = existing(path)
    if path.is_dir():
        yield from _decode_folder(path)
    elif path.suffix.lower() == ".gif":
        yield from _decode_gif(path)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raise NotAVideoError(f"{path} is a single image; put the frames of a video in a folder and read the folder")
    else:
        yield from _decode_container(path, needed)


def _decode_folder(folder: Path) -> Iterator[np.ndarray]:
    size = None
    for file in frame_files(folder):
        with _open_image(file) as image:
            if size is not None and image.size != size:
                raise CorruptVideoError(
                    f"{file} is {image.size[0]}x{image.size[1]}, the frames before it {size[0]}x{size[1]}"
                )
            size = image.size
            yield _rgb(image, file)


def _decode_gif(path: Path) -> Iterator[np.ndarray]:
    """Gif frames at a constant rate: a frame shown k times longer than the shortest is repeated k times, one frame
    decoded at a time.

    Gif writers (Pillow among them) merge identical consecutive frames into one longer frame.
    """
    durations, base, _ = _gif_timing(path)
    with _open_image(path) as image:
        try:
            for frame, duration in zip(ImageSequence.Iterator(image), durations, strict=False):
                rgb = _rgb(frame, path)
                for _ in range(max(1, round(duration / base))):
                    yield rgb
        except (OSError, EOFError) as error:
            raise CorruptVideoError(f"{path} is corrupt or truncated: {error}") from None


def _gif_timing(path: Path) -> tuple[list[float], float, tuple[int, int]]:
    """Every stored gif frame's duration in milliseconds (100 when the file gives none), the duration of one frame
    (the one `write_video` notes in the comment, else the shortest) and the frames' (width, height); a gif that
    declares more frames than one read decodes is refused before any frame decodes."""
    with _open_image(path) as image:
        comment = image.info.get("comment", b"")  # read first: counting the frames rewinds, which drops it
        try:
            if image.n_frames * image.width * image.height > MAX_DECODED_PIXELS:
                raise _too_large(path, image.n_frames, image.height, image.width, "as it declares")
            durations = [frame.info.get("duration") or 100 for frame in ImageSequence.Iterator(image)]
        except (OSError, EOFError) as error:
            raise CorruptVideoError(f"{path} is corrupt or truncated: {error}") from None
        size = image.size
    noted = re.search(rb"frame duration (\d+) ms", comment if isinstance(comment, bytes) else comment.encode())
    return durations, float(noted.group(1)) if noted else min(durations), size


def _decode_container(path: Path, needed: int | None) -> Iterator[np.ndarray]:
    """Frames in order; a stream that declares more pixels than one read decodes for the `needed` frames (None: all)
    is refused before it decodes, one that decodes fewer frames than it declares is refused (frames lost to damage),
    and damage the decoder concealed (its "error while decoding" messages: smeared blocks) is counted and warned
    about."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # FFmpeg says what it concealed only while its log is on
    decoded, logs = 0, None
    try:
        with av.logging.Capture(local=False) as logs, _open_container(path) as container:  # opening decodes too
            stream = container.streams.video[0]
            height, width = stream.codec_context.height, stream.codec_context.width
            declared = min(stream.frames, needed or stream.frames) if stream.frames else needed or 1
            if declared * height * width > MAX_DECODED_PIXELS:
                how = "as it declares" if declared == stream.frames else "as asked"
                raise _too_large(path, declared, height, width, how)
            try:
                for frame in container.decode(stream):
                    decoded += 1
                    yield frame.to_ndarray(format="rgb24")
            except av.error.FFmpegError as error:
                raise CorruptVideoError(
                    f"{path} is corrupt or truncated: decoding failed after {decoded} frames ({error})"
                ) from None
            if stream.frames and decoded < stream.frames:
                raise CorruptVideoError(
                    f"{path} is corrupt or truncated: it declares {stream.frames} frames but only {decoded} decode"
                )
    finally:
        av.logging.set_level(level)
        errors = len({message for _, _, message in logs or () if "error while decoding" in message})  # once each
        if errors:
            warnings.warn(
                f"{path} is damaged: the decoder concealed {errors} errors in its first {decoded} frames, which may "
                "be smeared; re-encode it from its source",
                DamagedVideoWarning,
                stacklevel=2,
            )


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), metadata_errors="replace")  # damaged tags read as U+FFFD, not a crash
    except av.error.FFmpegError as error:
        with path.open("rb") as file:
            head = file.read(12)
        if path.stat().st_size == 0:
            raise NotAVideoError(f"{path} is empty") from None
        if head.startswith(_SIGNATURES) or head[4:8] in _MP4_BOXES:
            raise CorruptVideoError(f"{path} is corrupt or truncated: {_reason(error)}") from None
        raise NotAVideoError(f"{path} is not a video ({_reason(error)})") from None
    format_name = container.format.name
    if not container.streams.video or format_name in _STILL_FORMATS or format_name.endswith("_pipe"):
        container.close()
        kind = f"FFmpeg reads it as {format_name!r}" if container.streams.video else "it has no video stream"
        raise NotAVideoError(f"{path} is not a video ({kind})")
    if container.streams.video[0].codec_context is None:
        container.close()
        raise CorruptVideoError(f"{path} is corrupt or its codec unknown: FFmpeg has no decoder for its video stream")
    return container


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise NotAVideoError(f"{path} is not an image Pillow can read") from None
    except OSError as error:
        raise CorruptVideoError(f"{path} is corrupt or truncated: {error}") from None


def _rgb(image: Image.Image, path: Path) -> np.ndarray:
    try:
        if image.mode in _WIDE_GREY:  # 16-bit grey (exported depth maps): Pillow's RGB conversion clips it to white
            grey = np.clip(np.round(np.asarray(image, dtype=np.float64) / 257), 0, 255).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=-1)
        return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise CorruptVideoError(f"{path} is corrupt or truncated: {error}") from None


def _reason(error: av.error.FFmpegError) -> str:
    return error.strerror or str(error)
