"""Fixtures for the pipeline: a user's folder of support images."""

import pytest
from PIL import Image

from tint_core.data import write_digits_dataset


@pytest.fixture
def support_folder(tmp_path):
    """Three classes of two digit images each, named like a user's folders, one of them a greyscale JPEG."""
    digits = write_digits_dataset(str(tmp_path / "digits"), size=16)
    folder = tmp_path / "supports"
    for name, digit in (("five", "5"), ("six", "6"), ("seven", "7")):
        (folder / name).mkdir(parents=True)
        for index, path in enumerate(digits.paths("novel", digit)[:2]):
            Image.open(path).convert("L").save(folder / name / f"{index}.{'jpg' if name == 'six' else 'png'}")
    return folder
