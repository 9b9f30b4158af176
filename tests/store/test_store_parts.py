import pickle

import pyarrow as pa
import pytest
import torch
from pydantic import BaseModel
from safetensors import SafetensorError

from tint_core.images import encode_png
from tint_core.store import ImageSet
from tint_core.store.parts import check_part_name, decode_part, encode_part


def test_tensor_mapping_round_trips_exactly_with_dtype_and_shape():
    tensors = {"emb": torch.randn(3, 768), "ids": torch.arange(5, dtype=torch.int64), "h": torch.rand(2, 2).half()}
    kind, data = encode_part("t", tensors)
    assert kind == "tensors"
    back = decode_part(kind, data)
    assert back.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype
        assert torch.equal(back[name], tensor)


def test_non_contiguous_and_grad_tensors_are_stored_by_value():
    base = torch.randn(4, 6, requires_grad=True)
    kind, data = encode_part("t", {"view": base.t()})
    assert torch.equal(decode_part(kind, data)["view"], base.detach().t())


def test_table_round_trips_with_schema():
    table = pa.table({"label": pa.array([0, 1, 2], pa.int16()), "logits": [[0.5, 1.5], [1.0, 2.0], [3.0, 4.0]]})
    kind, data = encode_part("labels", table)
    assert kind == "table"
    assert decode_part(kind, data).equals(table)


def test_image_set_round_trips_pixels_and_metadata():
    images = [torch.rand(3, 8, 12), torch.rand(3, 5, 5)]  # sizes may differ
    image_set = ImageSet.from_tensors(images, {"label": [3, 4], "source": ["a", "b"]})
    kind, data = encode_part("images", image_set)
    assert kind == "images"
    back = decode_part(kind, data)
    assert len(back) == 2
    assert back.metadata.to_pydict() == {"label": [3, 4], "source": ["a", "b"]}
    for original, decoded in zip(images, back.tensors(), strict=True):
        assert decoded.shape == original.shape
        assert torch.allclose(decoded, original, atol=1 / 255 / 2 + 1e-6)  # 8-bit quantisation only


def test_image_set_without_metadata_keeps_its_image_count():
    image_set = ImageSet([encode_png(torch.zeros(3, 2, 2))] * 3)
    back = decode_part(*encode_part("images", image_set))
    assert len(back) == 3 and back.metadata.num_rows == 3 and back.metadata.num_columns == 0


def test_image_set_checks_its_metadata():
    png = [encode_png(torch.zeros(3, 2, 2))]
    with pytest.raises(ValueError, match="rows"):
        ImageSet(png, {"label": [1, 2]})
    with pytest.raises(ValueError, match="reserved"):
        ImageSet(png, {"png": [1]})
    with pytest.raises(ValueError, match="from_tensors"):
        ImageSet([torch.zeros(3, 2, 2)])


def test_json_data_and_pydantic_models_round_trip():
    class Report(BaseModel):
        accuracy: float
        classes: list[str]

    assert decode_part(*encode_part("j", {"b": [1, 2.5, None], "a": "é"})) == {"a": "é", "b": [1, 2.5, None]}
    assert decode_part(*encode_part("r", Report(accuracy=0.5, classes=["x"]))) == {"accuracy": 0.5, "classes": ["x"]}
    assert encode_part("empty", {}) == ("json", b"{}")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (torch.zeros(2), "mapping"),
        ({"a": torch.zeros(2), "b": 1}, "mixes"),
        ({"a": float("nan")}, "JSON"),
        ({"a": object()}, "JSON"),
    ],
)
def test_values_without_a_codec_are_refused_naming_the_part(value, match):
    with pytest.raises(TypeError, match=match) as raised:
        encode_part("my_part", value)
    assert "my_part" in str(raised.value)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../x", "x" * 101, "sp ace", 3])
def test_unsafe_part_names_are_refused(name):
    with pytest.raises(ValueError, match="part name"):
        check_part_name(name)


def test_decoding_never_unpickles(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    values = {
        "t": {"x": torch.ones(2)},
        "tab": pa.table({"a": [1]}),
        "img": ImageSet.from_tensors(torch.zeros(1, 3, 2, 2)),
        "j": [1],
    }
    for name, value in values.items():
        decode_part(*encode_part(name, value))
    with pytest.raises(SafetensorError):  # a pickle disguised as a tensor part is rejected, not loaded
        decode_part("tensors", pickle.dumps({"x": torch.ones(2)}))
