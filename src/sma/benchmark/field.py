"""The field's tables beside sma's records: MTBench's as DeT lays it out (edit fidelity EF, temporal consistency
TC and motion fidelity MF, over all clips and per difficulty) with DeT's published rows, and the SMA paper's CLIP
text alignment and frame consistency with its published numbers."""

from __future__ import annotations

import numpy as np

DET_SOURCE = (
    "DeT (Shi et al., ICCV 2025; arXiv 2503.17350), the table of its README (github.com/Shi-qingyu/DeT at 2a2f4dd, "
    "README.md line 89, assets/quantitative.png); methods without a backbone in brackets ran on their own backbones"
)
COLUMNS = ("all", "hard", "medium", "easy")  # DeT's order
SCORES = (  # DeT's heading, the record's key, the factor DeT prints it with (a CLIP score is already ~100 cosine)
    ("EF", "mtbench_text_fidelity", 1.0),
    ("TC", "mtbench_temporal_consistency", 100.0),
    ("MF", "mtbench_motion_fidelity", 100.0),
)
DET_ROWS = {  # EF, TC, MF for all, hard, medium, easy
    "MotionDirector": (31.9, 91.7, 67.7, 32.3, 88.3, 67.9, 32.5, 93.4, 66.8, 30.8, 93.4, 68.3),
    "SMA": (31.6, 82.9, 55.1, 32.9, 78.1, 44.1, 32.1, 84.7, 52.1, 29.9, 85.8, 69.2),
    "MotionClone": (30.8, 80.9, 78.9, 30.5, 74.4, 72.5, 31.9, 83.4, 79.2, 30.0, 84.8, 85.0),
    "MOFT": (33.0, 91.1, 52.5, 33.8, 89.7, 48.0, 33.2, 92.1, 53.2, 31.9, 91.4, 56.3),
    "DMT (CogVideoX)": (30.5, 87.6, 65.1, 31.6, 84.1, 64.1, 31.8, 89.0, 64.6, 28.2, 89.6, 66.7),
    "DreamBooth (CogVideoX)": (28.4, 85.6, 80.4, 27.5, 83.2, 76.9, 27.9, 84.7, 80.1, 29.9, 88.9, 84.2),
    "MotionInversion (CogVideoX)": (26.6, 85.4, 85.0, 27.2, 80.8, 80.7, 27.2, 84.9, 90.8, 25.5, 89.4, 84.6),
    "DeT (CogVideoX)": (31.2, 89.6, 85.8, 31.8, 84.7, 80.3, 31.1, 91.5, 92.2, 30.7, 92.7, 84.8),
    "DeT (HunyuanVideo)": (31.9, 91.9, 85.9, 31.1, 89.7, 80.1, 32.3, 93.1, 92.2, 31.1, 92.9, 85.4),
    "DeT (Step-Video-T2V)": (31.4, 91.6, 85.8, 30.9, 87.6, 80.5, 31.7, 93.5, 91.9, 31.6, 92.7, 85.0),
}

PAPER_SOURCE = (
    "the SMA paper (Park et al., AAAI 2025; arXiv 2403.15249), CLIP text alignment over 30 text-video pairs from "
    "DAVIS and WebVid, as the project's brief quotes it; it quotes no frame consistency"
)
PAPER_ROWS = {  # method (backbone): without SMA, with SMA
    "MotionDirector": (0.7550, 0.8081),
    "VMC (Show-1)": (0.8066, 0.8193),
    "VMC (ZeroScope)": (0.8223, 0.8425),
    "Tune-A-Video": (0.8289, 0.8633),
    "ControlVideo": (0.8686, 0.8781),
}
PAPER_SCORES = (("CLIP text alignment", "clip_text_alignment"), ("CLIP frame consistency", "clip_frame_consistency"))


def field_tables(records: list[dict]) -> list[str]:
    """The markdown lines of the field's tables the records were scored for (none for other suites)."""
    lines = []
    if any("mtbench_text_fidelity" in record for record in records):
        tracks = "CoTracker's" if _on_given_tracks(records) else "sma's DIS-flow"
        lines += ["", f"MTBench as DeT's table lays it out (EF: CLIP score, TC and MF x 100, MF on {tracks} tracks;"]
        lines += ["means over outputs):", "", mtbench_table(records)]
    if any("clip_text_alignment" in record for record in records):
        lines += ["", "The SMA paper's protocol (mean cosines; means over outputs):", "", paper_table(records)]
    return lines


def _groups(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(f"{record['method']} ({record['variant']})", []).append(record)
    return groups


def _mean(records: list[dict], key: str, factor: float = 1.0, form: str = "{:.1f}") -> str:
    values = [record[key] for record in records if record.get(key) is not None]
    return form.format(factor * np.mean(values)) if values else "-"


def _on_given_tracks(records: list[dict]) -> bool:
    """Whether every output was scored on CoTracker's tracks as well (`mtbench_cotracker`), as DeT scores them."""
    return all(record.get("mtbench_cotracker") is not None for record in records)


def mtbench_table(records: list[dict]) -> str:
    """sma's rows (method and variant) over every clip and per difficulty, then DeT's published rows. MF is on
    CoTracker's tracks where every output has them, else on sma's."""
    motion = "mtbench_cotracker" if _on_given_tracks(records) else "mtbench_motion_fidelity"
    scores = [(name, motion if name == "MF" else key, factor) for name, key, factor in SCORES]
    header = "| method | " + " | ".join(f"{column} {name}" for column in COLUMNS for name, _, _ in SCORES) + " |"
    lines = [header, "|---|" + "---|" * len(COLUMNS) * len(SCORES)]
    for label, chosen in _groups(records).items():
        cells = []
        for column in COLUMNS:
            level = [record for record in chosen if column == "all" or record.get("level") == column]
            cells += [_mean(level, key, factor) for _, key, factor in scores]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, row in DET_ROWS.items():
        lines.append(f"| {name} [DeT] | " + " | ".join(f"{value:.1f}" for value in row) + " |")
    return "\n".join(lines) + f"\n\n[DeT]: {DET_SOURCE}."


def paper_table(records: list[dict]) -> str:
    """sma's rows, then the paper's published text alignment without and with SMA."""
    lines = ["| method | " + " | ".join(title for title, _ in PAPER_SCORES) + " |", "|---|---|---|"]
    for label, chosen in _groups(records).items():
        cells = [_mean(chosen, key, form="{:.4f}") for _, key in PAPER_SCORES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, (without, with_sma) in PAPER_ROWS.items():
        lines += [f"| {name} (nosma) [paper] | {without:.4f} | - |", f"| {name} (sma) [paper] | {with_sma:.4f} | - |"]
    return "\n".join(lines) + f"\n\n[paper]: {PAPER_SOURCE}."
