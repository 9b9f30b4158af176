import pytest
from pydantic import Field, ValidationError

from tint_core.config import TintConfig


class Example(TintConfig):
    steps: int = Field(10, ge=1, description="number of steps")
    rate: float = Field(1e-3, gt=0, description="learning rate")


def test_yaml_round_trip_keeps_every_field(tmp_path):
    config = Example(steps=3)
    path = tmp_path / "c.yaml"
    config.to_yaml(path)
    assert Example.from_yaml(path) == config


def test_unknown_keys_and_bad_values_are_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stepz: 3\n")
    with pytest.raises(ValidationError, match="stepz"):
        Example.from_yaml(path)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Example(steps=0)


def test_updated_validates_the_changes():
    assert Example().updated(steps=5).steps == 5
    with pytest.raises(ValidationError):
        Example().updated(rate=-1.0)
