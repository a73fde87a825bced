import dataclasses

import pytest

from moon_rl.config_io import build_config, parse_set_overrides, read_yaml
from moon_rl.errors import MoonError


@dataclasses.dataclass
class Toy:
    learning_rate: float = 1e-4
    max_steps: int = 10
    name: str = "x"
    use_thing: bool = False
    layers: list[int] | None = None


def test_layers_override_in_order():
    cfg = build_config(Toy, ("a.yaml", {"max_steps": 5, "name": "a"}), ("--set", {"name": "b"}), learning_rate=3)
    assert cfg == Toy(learning_rate=3.0, max_steps=5, name="b")
    assert isinstance(cfg.learning_rate, float)


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(MoonError) as err:
        build_config(Toy, ("run.yaml", {"learning_rat": 1.0}))
    msg = str(err.value)
    assert "run.yaml" in msg and "learning_rat" in msg and "Did you mean learning_rate" in msg
    assert "max_steps" in msg  # the list of valid keys


@pytest.mark.parametrize("key,value", [("max_steps", "ten"), ("use_thing", "yes please"), ("max_steps", True)])
def test_wrong_type_is_named(key, value):
    with pytest.raises(MoonError, match=key):
        build_config(Toy, ("--set", {key: value}))


def test_set_overrides_parse_yaml_scalars():
    assert parse_set_overrides(["a=1e-4", "b=true", "c=[1, 2]", "d=hello"]) == {"a": 1e-4, "b": True, "c": [1, 2], "d": "hello"}
    with pytest.raises(MoonError, match="KEY=VALUE"):
        parse_set_overrides(["novalue"])


def test_read_yaml_errors(tmp_path):
    with pytest.raises(MoonError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(MoonError, match="mapping"):
        read_yaml(bad)


def test_yaml_no_means_the_word_for_choice_fields():
    from moon_rl.trainers.sft.config import build_sft_configs

    cfg, _ = build_sft_configs(None, parse_set_overrides(["save_strategy=no"]), model="m", output_dir="o")
    assert str(cfg.save_strategy.value if hasattr(cfg.save_strategy, "value") else cfg.save_strategy) == "no"
    with pytest.raises(MoonError, match="max_steps"):
        build_config(Toy, ("--set", {"max_steps": False}))
