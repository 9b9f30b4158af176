"""A real few-shot dataset that needs no download: scikit-learn's bundled handwritten digits.

1797 greyscale 8×8 digits (about 180 per class) are upscaled and written as PNGs in an ImageFolder tree
``root/<split>/<digit>/<index>.png``. Default split: base = 0–4, novel = 5–9 and no val split (ten classes leave
none to spare; tune on base-class episodes instead). Ink is bright on a dark background, as in the source data.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Sequence

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem
from PIL import Image

from tint_core.data.datasets import FewShotDataset

DEFAULT_BASE = (0, 1, 2, 3, 4)
DEFAULT_NOVEL = (5, 6, 7, 8, 9)
# Images per digit in scikit-learn's copy (UCI's optdigits test set; a test checks it against load_digits): the
# configuration checks of every run ask, and importing scikit-learn to count them costs a process ~2 s of CPU.
DIGITS_PER_CLASS = {0: 178, 1: 182, 2: 177, 3: 183, 4: 181, 5: 182, 6: 181, 7: 179, 8: 174, 9: 180}


def _write_whole(fs: fsspec.AbstractFileSystem, files: dict[str, bytes]) -> None:
    """Write ``files`` (path → bytes) so that a reader never sees one half-written, even while another process writes
    the same tree: an object store replaces each object whole; a local file is written aside and renamed."""
    if not isinstance(fs, LocalFileSystem):
        fs.pipe(files)  # one call: remote filesystems upload the 1797 small files concurrently
        return
    for path, data in files.items():
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"  # unique: two writers never share a temporary file
        try:
            with open(temporary, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)  # a full disk, a stop: leave no stray file behind
            raise


def write_digits_dataset(
    url: str,
    size: int = 32,
    base: Sequence[int] = DEFAULT_BASE,
    val: Sequence[int] = (),
    novel: Sequence[int] = DEFAULT_NOVEL,
    storage_options: dict | None = None,
    per_class: int | None = None,
) -> FewShotDataset:
    """Write the digits as an ImageFolder tree under ``url`` and return it as a dataset.

    Args:
        url: fsspec folder to write into (created if needed; existing files of the same name are replaced).
        size: side of the written PNGs; the 8×8 originals are upscaled bilinearly.
        base, val, novel: the digits of each split; they must not overlap.
        per_class: write only the first ``per_class`` images of each digit (in scikit-learn's order); None: all.

    Returns:
        The dataset read back from ``url``.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    splits = {"base": tuple(base), "val": tuple(val), "novel": tuple(novel)}
    chosen = [digit for digits in splits.values() for digit in digits]
    if len(set(chosen)) != len(chosen) or not set(chosen) <= set(range(10)):
        raise ValueError(f"split digits must be distinct values in 0..9, got {splits}")
    if size < 8:
        raise ValueError(f"size must be at least 8 (the source resolution), got {size}")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be at least 1 (or None: every image), got {per_class}")
    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), source range is 0..16
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    files = {}
    for split, members in splits.items():
        for digit in members:
            folder = f"{root}/{split}/{digit}"
            fs.makedirs(folder, exist_ok=True)
            for index in np.flatnonzero(digits.target == digit)[:per_class]:
                image = Image.fromarray(pixels[index], mode="L").resize((size, size), Image.Resampling.BILINEAR)
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                files[f"{folder}/{index:04d}.png"] = buffer.getvalue()
    _write_whole(fs, files)
    return FewShotDataset.from_image_folder(url, storage_options=storage_options)
