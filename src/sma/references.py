"""The references a run trains on: one video, several, or folders of videos with same-name `.txt` captions.

A folder that holds videos is a dataset in the layout LoRA trainers use (musubi-tuner,
diffusion-pipe, ai-toolkit): `clip.mp4` beside `clip.txt`, the caption of that clip. A folder
that holds only image frames is one video, as everywhere else in `sma`. Everything here is
checked before any model loads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sma.errors import SmaError
from sma.run_folder import file_hash
from sma.video.files import IMAGE_SUFFIXES, natural_key

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif")
CAPTION_SUFFIX = ".txt"
ENTRY_KEYS = ("path", "prompt")  # a recipe entry of `references`: a path, or a mapping of these


@dataclass(frozen=True)
class Reference:
    """One reference video, the caption it trains with ("" when none was given) and its content hash."""

    path: Path
    prompt: str
    sha256: str
    from_dataset: bool = False  # found in a folder of videos, or one of several: it needs a caption

    def describe(self) -> dict[str, str]:
        """What run.json records of it; a resumed run must find the same hashes and captions."""
        return {"path": str(self.path), "prompt": self.prompt, "sha256": self.sha256}


def check_entries(entries: Any) -> None:
    """`references` is a list of paths or {path, prompt} mappings (a recipe's shape, checked with the config)."""
    if not isinstance(entries, list):
        raise SmaError(f"`references` must be a list of videos or folders, got {entries!r}")
    for entry in entries:
        if isinstance(entry, dict):
            unknown = sorted(set(entry) - set(ENTRY_KEYS))
            if unknown or not isinstance(entry.get("path"), str):
                raise SmaError(f"an entry of `references` needs `path` (and may have `prompt`), got {entry!r}")
            if not isinstance(entry.get("prompt", ""), str):
                raise SmaError(f"the prompt of reference {entry['path']} must be text, got {entry['prompt']!r}")
        elif not isinstance(entry, str):
            raise SmaError(f"an entry of `references` must be a path or {{path, prompt}}, got {entry!r}")


def entry_path(entry: str | dict) -> str:
    return entry["path"] if isinstance(entry, dict) else entry


def check_found(entries: list[str | dict]) -> None:
    """The entries are well formed, there is one at least, and each path exists: what the command line checks
    before the model libraries load."""
    check_entries(entries)
    if not entries:
        raise SmaError("give a reference video, several, or a folder of them (`references`)")
    for entry in entries:
        if not Path(entry_path(entry)).expanduser().exists():
            raise SmaError(f"no reference video at {Path(entry_path(entry)).expanduser()}")


def resolve(entries: list[str | dict]) -> list[Reference]:
    """Every reference video the entries name, in order (a folder's videos in natural name order), hashed."""
    check_found(entries)
    references = []
    for entry in entries:
        path = Path(entry_path(entry)).expanduser()
        prompt = entry.get("prompt", "") if isinstance(entry, dict) else ""
        if path.is_dir() and not _is_frame_folder(path):
            references += [Reference(video, caption, file_hash(video), True) for video, caption in _dataset(path)]
        else:
            references.append(Reference(path, prompt, file_hash(path)))
    if len(references) > 1:
        references = [Reference(ref.path, ref.prompt, ref.sha256, True) for ref in references]
    return references


def captioned(references: list[Reference], prompt: str) -> list[Reference]:
    """Each reference with its caption, or `prompt` where it has none; a dataset video with neither is an error."""
    missing = [ref for ref in references if ref.from_dataset and not ref.prompt.strip() and not prompt.strip()]
    if missing:
        caption = missing[0].path.with_suffix(CAPTION_SUFFIX)
        raise SmaError(f"{missing[0].path} has no caption ({caption.name}) and `prompt` is empty: give one of them")
    return [Reference(ref.path, ref.prompt.strip() or prompt, ref.sha256, ref.from_dataset) for ref in references]


def _is_frame_folder(folder: Path) -> bool:
    """A folder of image frames and no videos: one video, not a dataset."""
    suffixes = {path.suffix.lower() for path in folder.iterdir() if path.is_file()}
    return bool(suffixes & set(IMAGE_SUFFIXES)) and not suffixes & set(VIDEO_SUFFIXES)


def _dataset(folder: Path) -> list[tuple[Path, str]]:
    """(video, caption) of each video directly in `folder`; the caption is "" where there is no .txt beside it."""
    files = sorted((path for path in folder.iterdir() if path.is_file()), key=natural_key)
    if not files:
        raise SmaError(f"{folder} is an empty folder: put the reference videos in it (clip.mp4, with clip.txt)")
    videos = [path for path in files if path.suffix.lower() in VIDEO_SUFFIXES]
    if not videos:
        raise SmaError(f"{folder} holds no videos ({', '.join(VIDEO_SUFFIXES)}): put the reference videos in it")
    stems = Counter(video.stem for video in videos)
    twins = [video.name for video in videos if stems[video.stem] > 1]
    if twins:
        raise SmaError(f"{folder} holds {' and '.join(twins)}: one video per name, so that each caption has one")
    orphans = [path for path in files if path.suffix.lower() == CAPTION_SUFFIX and path.stem not in stems]
    if orphans:
        raise SmaError(f"{orphans[0]} is a caption with no video of its name beside it (e.g. {orphans[0].stem}.mp4)")
    return [(video, _caption(video.with_suffix(CAPTION_SUFFIX))) for video in videos]


def _caption(path: Path) -> str:
    if not path.is_file():
        return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise SmaError(f"cannot read the caption {path}: {error}") from None
