import pytest
from pydantic import Field, ValidationError

from tint_core.config import ConfigError, TintConfig


class Example(TintConfig):
    steps: int = Field(10, ge=1, description="number of steps")
    rate: float = Field(1e-3, gt=0, description="learning rate")


class Outer(TintConfig):
    inner: Example = Example()
    name: str = "x"


def test_yaml_round_trip_keeps_every_field(tmp_path):
    config = Example(steps=3)
    path = tmp_path / "c.yaml"
    config.to_yaml(path)
    assert Example.from_yaml(path) == config


def test_an_unknown_yaml_field_is_one_line_naming_the_file_and_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  stepz: 3\n")
    with pytest.raises(ConfigError) as caught:
        Outer.from_yaml(path)
    message = str(caught.value)
    assert message == f"{path}: unknown field 'inner.stepz'"


def test_an_out_of_range_yaml_field_names_the_field_the_rule_and_the_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  steps: 0\n  rate: -1\n")
    with pytest.raises(ConfigError) as caught:
        Outer.from_yaml(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: field 'inner.steps'")
    assert "greater than or equal to 1" in message and "(got 0)" in message and "1 more" in message


def test_malformed_yaml_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\nrate: [1, 2\n")
    with pytest.raises(ConfigError) as caught:
        Example.from_yaml(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: not valid YAML at line")


def test_a_missing_file_or_a_non_mapping_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        Example.from_yaml(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Example.from_yaml(tmp_path / "list.yaml")


def test_config_errors_are_value_errors_so_callers_treat_them_as_bad_input():
    assert issubclass(ConfigError, ValueError)


def test_updated_validates_the_changes():
    assert Example().updated(steps=5).steps == 5
    with pytest.raises(ValidationError):
        Example().updated(rate=-1.0)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Example(steps=0)
