"""The recipe sections that backbones own, by recipe key: every config has each (`TransferConfig.sections`).

Adding one: a `sma.config.BackboneSection` dataclass in a module that imports no model code, and a line here.
"""

from __future__ import annotations

from sma.backbones.show1_options import Show1Options
from sma.config import BackboneSection

SECTIONS: dict[str, type[BackboneSection]] = {"show1": Show1Options}


def default_sections() -> dict[str, BackboneSection]:
    """Each section with its defaults."""
    return {key: section() for key, section in SECTIONS.items()}
