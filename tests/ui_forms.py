"""The page's fields as a visitor fills them (`sma.ui.FIELDS`), for the tests that run its jobs without a browser."""


def form(recipe: str, method: str = "vmc", sma: bool = True) -> dict:
    """A job of one target, with SMA and without it, and the untuned baseline."""
    return {
        "recipe": recipe,
        "method": method,
        "model": "",
        "prompt": "a red circle moving right",
        "targets": "a blue square",
        "sma.enabled": sma,
        "compare": True,
        "generate.untuned": True,
        "sma.global_weight": 0.4,
        "sma.local_weight": 0.2,
        "train.steps": 20,
        "video.frames": 8,
        "video.height": 64,
        "video.width": 64,
        "generate.steps": 10,
        "generate.inversion_steps": 10,
        "seed": 0,
        "name": "",
        "resume": False,
    }
