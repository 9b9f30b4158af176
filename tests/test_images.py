import io

import pytest
import torch
from PIL import Image

from tint_core.images import (
    ImageReadError,
    check_image_batch,
    decode_png,
    encode_png,
    load_image,
    pil_to_tensor,
    resize,
)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16", "CMYK"])
def test_any_mode_loads_as_rgb_in_unit_range(mode):
    image = Image.new("RGB", (7, 5), (10, 200, 30)).convert(mode)
    tensor = pil_to_tensor(image)
    assert tensor.shape == (3, 5, 7)
    assert tensor.dtype == torch.float32
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert torch.allclose(pil_to_tensor(image), torch.ones(3, 2, 2))


def test_grayscale_replicates_into_three_equal_channels():
    tensor = pil_to_tensor(Image.new("L", (3, 3), 128))
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])


def test_png_round_trip_is_exact_at_8_bits():
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 6, 4), generator=generator).float() / 255
    assert torch.equal(decode_png(encode_png(image)), image)


def test_corrupt_bytes_name_the_source():
    data = _png_bytes(Image.new("RGB", (4, 4)))[:20]
    with pytest.raises(ImageReadError, match="broken.png"):
        load_image(data, name="broken.png")


def test_corrupt_file_names_its_path(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        load_image(path)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(3, 8, 8), "shape"),
        (torch.rand(2, 1, 8, 8), "shape"),
        (torch.rand(0, 3, 8, 8), "empty"),
        (torch.rand(1, 3, 8, 8) * 2, r"\[0, 1\]"),
        (torch.rand(1, 3, 8, 8) - 1, r"\[0, 1\]"),
        (torch.full((1, 3, 2, 2), float("nan")), r"\[0, 1\]"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
    ],
)
def test_bad_batches_are_rejected_with_the_problem_named(images, message):
    with pytest.raises(ValueError, match=message):
        check_image_batch(images)


def test_resize_keeps_range_and_reaches_target_size():
    images = torch.rand(2, 3, 17, 9)
    out = resize(images, (8, 12))
    assert out.shape == (2, 3, 8, 12)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert resize(images, (17, 9)) is images
