"""reward_fns.registry: spec parsing, built-ins, dotted paths, files, entry points, YAML blocks."""

import pickle
import sys
import textwrap
from pathlib import Path

import pytest

from reward_fns.attributes import AttributeF1
from reward_fns.errors import RewardError
from reward_fns.registry import BUILTINS, available_rewards, parse_spec, resolve_reward, resolve_rewards

HERE = Path(__file__).parent
CUSTOM = HERE / "custom_rewards.py"


def test_parse_spec_forms():
    assert parse_spec("format") == ("format", None, 1.0)
    assert parse_spec(" format = 0.5 ") == ("format", None, 0.5)
    assert parse_spec("overlong=-1") == ("overlong", None, -1.0)
    assert parse_spec("attribute_f1(normalize=false, synonyms={a: b}, ignore_keys=[x, y])=2") == (
        "attribute_f1",
        {"normalize": False, "synonyms": {"a": "b"}, "ignore_keys": ["x", "y"]},
        2.0,
    )
    assert parse_spec("pkg.mod:make()") == ("pkg.mod:make", {}, 1.0)
    assert parse_spec("dir/f.py:fn(word='a,b')=0.1") == ("dir/f.py:fn", {"word": "a,b"}, 0.1)
    for bad in ("format=abc", "format=nan", "f(x)=1(", "attribute_f1(normalize)", ""):
        with pytest.raises(RewardError):
            parse_spec(bad)


def test_every_builtin_resolves_with_its_name_and_doc():
    docs = available_rewards()
    for name in BUILTINS:
        fn, weight = resolve_reward(name)
        assert fn.__name__ == name and weight == 1.0
        assert docs[name] and docs[name] != "(no docstring)"
        pickle.loads(pickle.dumps(fn))  # TRL's async rollout workers pickle rewards


def test_builtin_arguments_reach_the_factory():
    fn, weight = resolve_reward("attribute_f1(normalize=false)=3")
    assert isinstance(fn, AttributeF1) and fn.normalize is False and weight == 3.0
    fn, _ = resolve_reward("overlong(max_len=64, soft_cache=16)")
    assert fn(["a"], completion_ids=[[0] * 56]) == [-0.5]
    with pytest.raises(RewardError, match=r"bad arguments.*normalize"):
        resolve_reward("attribute_f1(normalise=true)")


def test_unknown_name_lists_available_rewards():
    with pytest.raises(RewardError) as err:
        resolve_reward("atribute_f1")
    message = str(err.value)
    assert "atribute_f1" in message and all(name in message for name in BUILTINS)


def test_file_reward_is_loaded_only_when_named(tmp_path):
    fn, weight = resolve_reward(f"{CUSTOM}:length_bonus=0.1")
    assert fn.__name__ == "length_bonus" and weight == 0.1
    assert fn(["x" * 100, [{"role": "assistant", "content": "x" * 400}]]) == [0.5, 1.0]
    factory_made, _ = resolve_reward(f"{CUSTOM}:keyword_reward(word=Navy)")
    assert factory_made.__name__ == "keyword_reward" and factory_made(["a navy shirt", "red"]) == [1.0, 0.0]
    with pytest.raises(RewardError, match="has no 'nope'.*length_bonus"):
        resolve_reward(f"{CUSTOM}:nope")
    with pytest.raises(RewardError, match="does not exist"):
        resolve_reward(f"{tmp_path / 'missing.py'}:fn")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RewardError, match="boom"):
        resolve_reward(f"{broken}:fn")


def test_dotted_module_reward(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    fn, _ = resolve_reward("custom_rewards:length_bonus")
    assert fn.__name__ == "length_bonus"
    with pytest.raises(RewardError, match="cannot import module 'no_such_module_xyz'"):
        resolve_reward("no_such_module_xyz:fn")


def _install_tiny_distribution(root: Path) -> None:
    """A real (tiny) installed distribution declaring a reward in the `moon_rl.rewards` group."""
    pkg = root / "acme_rewards_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        def brand_match(completions, title, **kwargs):
            """1.0 when the completion names the brand (the title's first word)."""
            return [float(t.split()[0].lower() in str(c).lower()) for c, t in zip(completions, title)]

        def broken():
            raise ImportError("missing dependency")
    '''))
    dist = root / "acme_rewards_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rewards-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[moon_rl.rewards]\nbrand_match = acme_rewards_plugin:brand_match\n"
        "format = acme_rewards_plugin:brand_match\n"  # shadowing a built-in: the built-in wins
        "broken_plugin = acme_rewards_plugin:missing_attr\n"
    )


def test_entry_point_reward_resolves_by_name(tmp_path, monkeypatch):
    _install_tiny_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    fn, weight = resolve_reward("brand_match=0.3")
    assert weight == 0.3 and fn(["Acme shirt", "other"], title=["Acme navy shirt"] * 2) == [1.0, 0.0]
    docs = available_rewards()
    assert "names the brand" in docs["brand_match"]
    assert "fails to load" in docs["broken_plugin"]  # listed, not hiding the others
    assert resolve_reward("format")[0].__name__ == "format" and "brand" not in docs["format"]
    with pytest.raises(RewardError, match="fails to load"):
        resolve_reward("broken_plugin")
    sys.modules.pop("acme_rewards_plugin", None)


def test_resolve_rewards_blocks_and_strings():
    funcs, weights = resolve_rewards([
        "format=0.5",
        {"name": "attribute_f1", "weight": 2, "args": {"normalize": False}},
        {"name": f"{CUSTOM}:keyword_reward", "args": {"word": "red"}},
    ])
    assert [f.__name__ for f in funcs] == ["format", "attribute_f1", "keyword_reward"]
    assert weights == [0.5, 2.0, 1.0] and funcs[1].normalize is False


@pytest.mark.parametrize(
    "specs, match",
    [
        ([], "no rewards"),
        ([{"name": "format", "wieght": 1}], r"unknown key.*wieght"),
        ([{"name": "format", "args": [1]}], "mapping"),
        ([{"name": "format(prefilled_think=true)"}], "under 'args'"),
        ([{"weight": 1}], "'name'"),
        (["format", "format=2"], "both log as 'format'"),
        ([3], "spec string"),
    ],
)
def test_resolve_rewards_errors(specs, match):
    with pytest.raises(RewardError, match=match):
        resolve_rewards(specs)
