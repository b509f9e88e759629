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


# `sma` with the arguments after -c; prints its exit status and the model libraries it imported
LIBRARIES_IMPORTED = (
    "import sys, contextlib, io\nfrom sma.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try: code = main(sys.argv[1:])\n    except SystemExit as stop: code = stop.code\n"
    "heavy = [name for name in ('torch', 'diffusers', 'transformers', 'cv2', 'av') if name in sys.modules]\n"
    "print(code, heavy)"
)


def run_counting_imports(command: list[str], folder) -> tuple[str, str]:
    """`sma COMMAND` in a fresh interpreter in `folder`: its exit status and the model libraries it imported, and
    what it wrote to stderr."""
    result = subprocess.run(
        [sys.executable, "-c", LIBRARIES_IMPORTED, *command], capture_output=True, text=True, cwd=folder
    )
    return result.stdout.split("\n")[-2], result.stderr


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
    for command in commands:
        status, stderr = run_counting_imports(command, tmp_path)
        assert status == ("0 []" if command == ["--help"] else "2 []"), (command, stderr)
        assert command == ["--help"] or "missing" in stderr


def test_a_mistake_in_the_recipe_is_said_before_the_model_libraries_load(tmp_path):
    """Issue 46: a misspelt recipe key was said after ~8 s, once torch and diffusers had loaded (the method's module,
    imported for its options, and the run's): keys, types and the method's name are now checked without them."""
    cases = [(["train"], "train:\n  stpes: 10\n", "unknown recipe key train.stpes: valid keys here are steps,")]
    cases += [
        (["transfer", "--target", "t"], recipe, said)
        for recipe, said in (
            ("method: dmt\ndmt:\n  iterashuns: 3\n", "unknown recipe key dmt.iterashuns: valid keys here are layers,"),
            ("method: vmcc\n", "unknown method 'vmcc': expected one of vmc,"),
            ("video:\n  frames: eight\n", "recipe key video.frames must be an integer, got 'eight'"),
        )
    ]
    for command, recipe, said in cases:
        (tmp_path / "recipe.yaml").write_text(recipe)
        arguments = [*command, "--config", "recipe.yaml", "--out", "run", "--model", "embedded"]
        status, stderr = run_counting_imports(arguments, tmp_path)
        assert status == "2 []", (recipe, stderr)
        assert stderr.startswith(f"sma: error: {said}") and len(stderr.splitlines()) == 1, stderr
    reference = "{objects: [{shape: circle, colour: red, motion: linear, start: [0.3, 0.5], end: [0.6, 0.5]}]}"
    suite = "name: typo\nworld: hard\noverrides: {train.stpes: 3}\nmethods: {vmc: {}}\nvariants: [nosma]\n"
    suite += f"references:\n  - name: r\n    synthetic: {reference}\n    targets: [{{colour: blue, shape: square}}]\n"
    (tmp_path / "suite.yaml").write_text(suite)
    status, stderr = run_counting_imports(["benchmark", "suite.yaml", "--out", "out"], tmp_path)
    assert status == "2 ['cv2']", stderr  # a suite's typo too (its synthetic clips are drawn with OpenCV: 20 ms)
    assert "unknown recipe key train.stpes" in stderr and len(stderr.splitlines()) == 1, stderr
