"""Which backbone names can be built: the small models defined here, and timm's.

Kept apart from the model code so that checking a configuration imports timm (and torchvision behind it, seconds)
only for a name that is not one of ours.
"""

from __future__ import annotations

import difflib

LOCAL_MODELS = ("resnet12", "resnet12_tiny", "tint_convnet", "tint_convnet_tiny", "tint_pixels")


def check_model_name(name: str) -> None:
    """Raise ValueError for a name neither defined here nor known to timm, listing close known names."""
    if name in LOCAL_MODELS:
        return
    import timm

    if timm.is_model(name):
        return
    known = sorted({*timm.list_models(), *LOCAL_MODELS})  # ours are registered with timm only once one is built
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"close matches: {close}" if close else f"known small models here: {list(LOCAL_MODELS)}"
    raise ValueError(f"unknown timm model {name!r}; {hint} (timm.list_models() lists all {len(known)})")
