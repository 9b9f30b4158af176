"""Devices and precisions, shared by the diffusion half and the few-shot half.

``auto`` means CUDA when this machine has it, else the CPU. A device this machine lacks is refused before any work by
:func:`check_device`, in one line naming the setting.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' picks CUDA when present, else CPU; anything else is parsed by torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str, setting: str) -> None:
    """Raise a one-line ValueError when ``device`` cannot be used on this machine.

    Args:
        device: 'auto', 'cpu', 'cuda', 'cuda:1', 'mps', …
        setting: the configuration field holding it, for the message (e.g. 'student.model.compute.device').
    """
    try:
        resolved = resolve_device(device)
    except RuntimeError as error:
        raise ValueError(f"{setting}: {device!r} is not a device ({error}); use 'auto', 'cpu' or 'cuda'") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{setting} is {device!r}, but this machine has no CUDA device: use 'cpu', or 'auto' "
                             "(CUDA where a machine has it)")  # fmt: skip
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"{setting} is {device!r}, but this machine has {count} CUDA device(s)")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{setting} is {device!r}, but MPS is not available on this machine")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{setting}: {device!r} is not a device to compute on; use 'auto', 'cpu' or 'cuda'")


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """The forward passes' precision: nothing for fp32, bfloat16 autocast for bf16 (weights, gradients, optimiser
    state and losses stay fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for a module with neither."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")
