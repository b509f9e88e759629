"""Errors about video files: each names the file and says what to do, on one line."""

from sma.errors import SmaError


class VideoError(SmaError):
    """A video that cannot be read or written as asked."""


class VideoNotFoundError(VideoError):
    """The path does not exist."""


class NotAVideoError(VideoError):
    """The file exists but is not a video, a gif or a folder of frames."""


class CorruptVideoError(VideoError):
    """The file looks like a video but cannot be decoded: corrupt or truncated."""


class DamagedVideoWarning(UserWarning):
    """The decoder met damaged data and concealed it: the frames read may be smeared."""


class NoFramesError(VideoError):
    """The video holds no decodable frame."""


class TooFewFramesError(VideoError):
    """The video has fewer frames than the selection asks for."""


class OutputExistsError(VideoError):
    """The output path exists and overwriting was not asked for."""


class VideoTooLargeError(VideoError):
    """Decoding what the selection asks for would take more pixels than one read decodes (a decompression bomb)."""
