import subprocess
import sys

import sma
from sma.cli import main


def test_version_through_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "sma", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"sma {sma.__version__}"


def test_help_without_arguments(capsys):
    assert main([]) == 0
    assert "Spectral Motion Alignment" in capsys.readouterr().out


def test_help_shows_the_defaults_and_says_the_prompt_matters(capsys):
    """Issue 35: demo and ui --help showed no defaults; transfer --help did not say --prompt matters."""
    import pytest

    for command, defaults in (
        ("demo", ["(default: sma-demo)", "(default: 150)", "(default: 0)"]),
        ("ui", ["(default: 127.0.0.1)", "(default: 7860)"]),
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        printed = " ".join(capsys.readouterr().out.split())
        assert all(default in printed for default in defaults), (command, printed)
        assert "(default: None)" not in printed and "(default: False)" not in printed
    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    assert "so give it; without one they condition on the empty text" in " ".join(capsys.readouterr().out.split())


def test_a_mistyped_path_is_said_before_the_model_libraries_load(tmp_path):
    """Issue 46: every command took ~8 s before its first word, even for a mistyped path: the error now comes
    without importing torch, diffusers, OpenCV or PyAV (0.6 s instead of 8-22 s, measured in the report)."""
    commands = [
        ["--help"],
        ["transfer", "missing.mp4", "--out", str(tmp_path / "run"), "--model", "embedded-hard", "--target", "t"],
        ["train", "missing.mp4", "--out", str(tmp_path / "run")],
        ["generate", "--adapter", "missing", "--target", "t", "--out", str(tmp_path / "videos")],
        ["evaluate", "missing.mp4", "other.mp4"],
    ]
    code = (
        "import sys, contextlib, io\nfrom sma.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: code = main(sys.argv[1:])\n    except SystemExit as stop: code = stop.code\n"
        "heavy = [name for name in ('torch', 'diffusers', 'transformers', 'cv2', 'av') if name in sys.modules]\n"
        "print(code, heavy)"
    )
    for command in commands:
        result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, cwd=tmp_path)
        assert result.stdout.split("\n")[-2] == ("0 []" if command == ["--help"] else "2 []"), (command, result)
        assert command == ["--help"] or "missing" in result.stderr
