import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from sma.video import (
    CorruptVideoError,
    NoFramesError,
    NotAVideoError,
    OutputExistsError,
    TooFewFramesError,
    VideoNotFoundError,
    frames_to_tensor,
    probe_video,
    read_video,
    read_video_tensor,
    resize_frames,
    tensor_to_frames,
    write_video,
)
from sma.video.atomic import atomic_output


def numbered_frames(count=16, height=32, width=48):
    """Frames whose grey level says their index (10 * index), plus a gradient so codecs have texture."""
    ramp = np.linspace(0, 60, width, dtype=np.float32)[None, :, None]
    frames = np.stack([np.broadcast_to(10.0 * index + ramp, (height, width, 3)) for index in range(count)])
    return frames.round().astype(np.uint8)


def frame_index(frame):
    return round(float(frame[:, :2].mean()) / 10)


def write_folder(folder, frames, names):
    folder.mkdir()
    for frame, name in zip(frames, names, strict=True):
        Image.fromarray(frame).save(folder / name)
    return folder


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mov", "clip.mkv", "clip.gif", "frames"])
def test_round_trip(tmp_path, name):
    frames = numbered_frames()
    path = write_video(tmp_path / name, frames, fps=8)
    read = read_video(path)
    assert read.shape == frames.shape and read.dtype == np.uint8
    assert np.abs(read.astype(int) - frames).mean() < 2.0
    assert [frame_index(frame) for frame in read] == list(range(16))


def test_mp4_is_h264_yuv420p_with_the_frame_rate(tmp_path):
    path = write_video(tmp_path / "clip.mp4", numbered_frames(), fps=12)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 12
    assert probe_video(path).fps == 12


def test_odd_sizes_are_padded_to_even_for_h264(tmp_path):
    frames = numbered_frames(8, height=33, width=47)
    read = read_video(write_video(tmp_path / "odd.mp4", frames))
    assert read.shape == (8, 34, 48, 3)
    assert np.abs(read[:, :33, :47].astype(int) - frames).mean() < 2.0


@pytest.mark.parametrize("names", [["1.png", "2.png", "10.png"], ["frame_2.jpg", "frame_10.jpg", "frame_1.jpg"]])
def test_frame_folders_read_in_natural_order(tmp_path, names):
    frames = numbered_frames(3)
    order = sorted(range(3), key=lambda i: int("".join(c for c in names[i] if c.isdigit())))
    folder = write_folder(tmp_path / "frames", frames[order], [names[i] for i in order])
    expected = [int("".join(c for c in names[i] if c.isdigit())) for i in order]
    indices = [frame_index(frame) for frame in read_video(folder)]
    assert indices == [order[expected.index(n)] for n in sorted(expected)]


def test_webp_frames(tmp_path):
    folder = write_folder(tmp_path / "frames", numbered_frames(3), ["a_1.webp", "a_2.webp", "a_3.webp"])
    assert read_video(folder).shape == (3, 32, 48, 3)


def test_frame_selection_by_count_stride_and_start(tmp_path):
    folder = write_video(tmp_path / "frames", numbered_frames(16))
    assert [frame_index(f) for f in read_video(folder, 4, stride=3, start=2)] == [2, 5, 8, 11]
    assert [frame_index(f) for f in read_video(folder, start=13)] == [13, 14, 15]
    assert [frame_index(f) for f in read_video(folder, stride=5)] == [0, 5, 10, 15]


def test_frame_selection_by_target_fps(tmp_path):
    path = write_video(tmp_path / "clip.mp4", numbered_frames(16), fps=8)
    assert [frame_index(f) for f in read_video(path, fps=4)] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert [frame_index(f) for f in read_video(path, 3, fps=16)] == [0, 0, 1]


def test_fps_selection_needs_a_frame_rate(tmp_path):
    folder = write_video(tmp_path / "frames", numbered_frames(4))
    with pytest.raises(NotAVideoError, match="stride"):
        read_video(folder, fps=4)


def stripes(height=20, width=40):
    """One frame whose columns are all different, so crops can be located exactly."""
    column = np.arange(width, dtype=np.uint8)[None, :, None] * 6
    return np.broadcast_to(column, (1, height, width, 3)).copy()


def test_resize_crop_takes_the_centre():
    frame = stripes()
    assert np.array_equal(resize_frames(frame, (20, 20)), frame[:, :, 10:30])


def test_resize_pad_letterboxes_with_black():
    frame = stripes()
    padded = resize_frames(frame, (40, 40), fit="pad")
    assert np.array_equal(padded[:, 10:30], frame)
    assert not padded[:, :10].any() and not padded[:, 30:].any()


def test_resize_stretch_changes_the_aspect():
    frame = stripes()
    stretched = resize_frames(frame, (10, 10), fit="stretch")
    assert stretched.shape == (1, 10, 10, 3)
    assert np.all(np.diff(stretched[0, 0, :, 0].astype(int)) > 0)


def test_read_with_size(tmp_path):
    path = write_video(tmp_path / "frames", numbered_frames(4))
    assert read_video(path, size=(16, 16)).shape == (4, 16, 16, 3)
    assert read_video(path, size=(40, 20), fit="pad").shape == (4, 40, 20, 3)


def test_tensor_layout_and_range(tmp_path):
    frames = numbered_frames(4)
    tensor = read_video_tensor(write_video(tmp_path / "frames", frames), 3)
    assert tensor.shape == (1, 3, 3, 32, 48) and tensor.dtype == torch.float32
    expected = torch.from_numpy(frames[:3].astype(np.float32) / 127.5 - 1.0)  # (f, h, w, c)
    torch.testing.assert_close(tensor[0].permute(1, 2, 3, 0), expected)
    assert np.array_equal(tensor_to_frames(frames_to_tensor(frames)), frames)
    assert np.array_equal(tensor_to_frames(torch.full((3, 1, 2, 2), 2.0)), np.full((1, 2, 2, 3), 255, np.uint8))


def test_write_accepts_a_tensor(tmp_path):
    frames = numbered_frames(4)
    read = read_video(write_video(tmp_path / "frames", frames_to_tensor(frames)))
    assert np.array_equal(read, frames)


# --- errors -------------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(VideoNotFoundError, match="does not exist"):
        read_video(tmp_path / "nothing.mp4")


@pytest.mark.parametrize("name", ["notes.txt", "notes.mp4"])
def test_a_file_that_is_not_a_video(tmp_path, name):
    path = tmp_path / name
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(NotAVideoError, match="not a video"):
        read_video(path)


def test_a_single_image_is_not_a_video(tmp_path):
    path = tmp_path / "still.png"
    Image.fromarray(numbered_frames(1)[0]).save(path)
    with pytest.raises(NotAVideoError, match="single image"):
        read_video(path)


def test_truncated_mp4(tmp_path):
    path = write_video(tmp_path / "clip.mp4", numbered_frames())
    data = path.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptVideoError, match="corrupt or truncated"):
        read_video(truncated)


def test_corrupt_frame_in_a_folder(tmp_path):
    folder = write_video(tmp_path / "frames", numbered_frames(3))
    broken = sorted(folder.iterdir())[1]
    broken.write_bytes(broken.read_bytes()[:60])
    with pytest.raises(CorruptVideoError, match=broken.name):
        read_video(folder)


def test_folder_without_frames(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoFramesError, match="no frame images"):
        read_video(tmp_path / "empty")


def test_fewer_frames_than_asked_says_how_many_and_what_helps(tmp_path):
    path = write_video(tmp_path / "clip.mp4", numbered_frames(16))
    with pytest.raises(TooFewFramesError) as caught:
        read_video(path, 10, stride=2)
    message = str(caught.value)
    assert "has 16 frames" in message and "at most 8 frames" in message and "stride" in message
    assert "\n" not in message


# --- writing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.mp4", "clip.gif", "frames"])
def test_existing_output_is_kept_unless_overwrite(tmp_path, name):
    first, second = numbered_frames(4), numbered_frames(4)[::-1].copy()
    path = write_video(tmp_path / name, first)
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_video(path, second)
    assert frame_index(read_video(path)[0]) == 0
    write_video(path, second, overwrite=True)
    assert frame_index(read_video(path)[0]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_bytes(b"half a video")
        raise RuntimeError("encoder died")
    assert list(tmp_path.iterdir()) == []


def test_unsupported_suffix_writes_nothing(tmp_path):
    with pytest.raises(Exception, match="cannot write"):
        write_video(tmp_path / "clip.xyz", numbered_frames(2))
    assert list(tmp_path.iterdir()) == []


def test_frames_must_be_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "clip.mp4", numbered_frames(2).astype(np.float32))
    assert not Path(tmp_path / "clip.mp4").exists()


@pytest.mark.parametrize(("suffix", "codec"), [(".webm", "libvpx-vp9"), (".avi", "mpeg4")])
def test_other_containers_read_through_pyav(tmp_path, suffix, codec):
    frames = numbered_frames(6)
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    read = read_video(path)
    assert read.shape == frames.shape
    assert [frame_index(frame) for frame in read] == list(range(6))


def test_truncated_gif(tmp_path):
    path = write_video(tmp_path / "clip.gif", numbered_frames(8))
    truncated = tmp_path / "truncated.gif"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptVideoError, match="corrupt or truncated"):
        read_video(truncated)


def test_identical_gif_frames_keep_their_count(tmp_path):
    still = np.repeat(numbered_frames(1), 5, axis=0)  # gif writers merge identical frames into one
    assert read_video(write_video(tmp_path / "still.gif", still, fps=10)).shape[0] == 5


def test_a_damaged_mp4_is_warned_about_or_refused(tmp_path):
    """Issue 46: an mp4 with bytes overwritten mid-file decoded smeared frames without a word, or fewer frames than
    it declares. Each packet is damaged in its slice header and in its middle: the decoder's concealed errors are
    warned about, lost frames refused; damage H.264 cannot notice (it has no checksum) still reads silently."""
    from sma.video.errors import DamagedVideoWarning

    texture = np.random.default_rng(5).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    path = write_video(tmp_path / "clip.mp4", np.stack([np.roll(texture, 3 * k, axis=1) for k in range(12)]))
    data = path.read_bytes()
    with av.open(str(path)) as container:
        packets = [(packet.pos, packet.size) for packet in container.demux(container.streams.video[0]) if packet.size]
    warned = refused = 0
    for index, (position, size) in enumerate(packets[1:], start=1):
        for offset, length in ((6, 3), (size // 3, min(300, size // 3))):
            damaged = bytearray(data)
            noise = np.random.default_rng(index).integers(0, 256, length, dtype=np.uint8)
            damaged[position + offset : position + offset + length] = noise.tobytes()
            (tmp_path / "damaged.mp4").write_bytes(damaged)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    frames = read_video(tmp_path / "damaged.mp4")
                except CorruptVideoError:
                    refused += 1
                    continue
            assert len(frames) == 12  # never fewer frames than it declares, silently
            warned += any(issubclass(warning.category, DamagedVideoWarning) for warning in caught)
    assert warned >= 3 and refused >= 3, (warned, refused)


def gif_bomb(path: Path, side: int, frames: int) -> Path:
    """A gif of `frames` frames on a `side` x `side` screen, each one stored pixel: 26 bytes a frame (issue 42's
    23 KB gif of 1,000 frames of 4096x4096)."""
    import struct

    screen = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    control = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # 100 ms
    pixel = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"  # one pixel, LZW
    path.write_bytes(screen + (control + pixel) * frames + b"\x3b")
    return path


def test_a_decompression_bomb_is_refused_before_it_decodes(tmp_path, monkeypatch):
    """Issue 42, finding 5: a 26 KB gif declaring 1,000 frames of 4096x4096 (52 GB decoded) is refused by what it
    declares; an mp4 asked for more frames than the limit allows is refused before its first frame decodes."""
    from sma.video import VideoTooLargeError, probe_video, reading

    bomb = gif_bomb(tmp_path / "bomb.gif", 4096, 1000)
    assert bomb.stat().st_size < 30_000
    for read in (read_video, probe_video, lambda path: read_video(path, 8, size=(64, 64))):
        with pytest.raises(VideoTooLargeError, match=r"bomb.gif: decoding 1000 frames of 4096x4096 \(as it declares\)"):
            read(bomb)
    clip = write_video(tmp_path / "clip.mp4", np.zeros((30, 64, 64, 3), np.uint8))
    monkeypatch.setattr(reading, "MAX_DECODED_PIXELS", 20 * 64 * 64)
    with pytest.raises(VideoTooLargeError, match=r"decoding 30 frames of 64x64 \(as it declares\)"):
        read_video(clip)
    with pytest.raises(VideoTooLargeError, match=r"decoding 21 frames of 64x64 \(as asked\)"):
        read_video(clip, 5, stride=5, size=(16, 16))
    assert read_video(clip, 10, stride=2, size=(16, 16)).shape == (10, 16, 16, 3)


def test_reading_at_a_size_holds_one_full_frame_at_a_time(tmp_path):
    """Issue 42, finding 5: 16 frames of 384x384 read at 16x16 held every full frame (the size limited the output,
    not the decoding); now each frame is scaled as it is decoded."""
    import tracemalloc

    frames = numbered_frames(16, 384, 384)
    for path in (write_video(tmp_path / "big.mp4", frames), write_video(tmp_path / "big.gif", frames)):
        tracemalloc.start()
        assert read_video(path, size=(16, 16)).shape == (16, 16, 16, 3)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 3 * 2**20, (path.name, peak)  # 16 full frames: 7 MB
