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
