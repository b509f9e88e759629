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
