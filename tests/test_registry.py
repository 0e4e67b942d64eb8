"""Registry: discovery through (mocked and real) entry points, lookup, errors, kill switch, YAML names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest
from jsonargparse import ActionConfigFile, ArgumentParser

import rlhf_lightning
from rlhf_lightning import ConstraintChecker, RewardFunction, registry
from rlhf_lightning.errors import PluginError, RLHFError
from rlhf_lightning.rewards.rules import KeywordReward, LengthReward, RegexReward
from tests.plugin_mocks import FakeEntryPoint, GoodReward, M, install_fake_entry_points

BUILTIN_REWARDS = {"length", "keyword", "regex", "format", "match", "classifier", "remote", "weighted_sum", "rouge",
                   "judge"}
BUILTIN_CONSTRAINTS = {"max_length", "banned_patterns", "classifier"}


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reset()
    yield
    registry.reset()


def ep(name, attr, group="rlhf_lightning.rewards", **kw):
    return FakeEntryPoint(name, f"{M}:{attr}", group, **kw)


# ---------------------------------------------------------------- built-ins and the real package


def test_builtins_found_with_distribution():
    assert BUILTIN_REWARDS <= set(registry.names("rewards"))
    assert BUILTIN_CONSTRAINTS <= set(registry.names("constraints"))
    assert registry.get("rewards", "length") is LengthReward
    info = next(i for i in registry.plugins("rewards") if i.name == "length")
    assert info.distribution == "rlhf-lightning" and info.builtin and info.version == rlhf_lightning.__version__
    assert info.class_path == "rlhf_lightning.rewards.rules.LengthReward"
    assert info.description.startswith("Rewards completions whose length")


def test_all_groups_and_bases():
    assert list(registry.GROUPS) == ["rewards", "constraints", "preference_losses", "reward_losses",
                                     "unpaired_losses", "advantage_estimators"]
    for group in registry.GROUPS:
        base = registry.base_class(group)
        assert getattr(rlhf_lightning, base.__name__) is base
        base()  # constructors take no required arguments
        assert registry.GROUPS[group][0] == f"rlhf_lightning.{group}"


def test_real_example_package_is_discovered():
    assert registry.get("rewards", "distinct_ngrams").__module__ == "rlhf_plugin_example.repetition"
    assert registry.get("preference_losses", "dpop").__name__ == "DPOPositiveLoss"
    dists = {i.distribution for i in registry.plugins() if i.name in {"distinct_ngrams", "repeated_ngrams", "dpop"}}
    assert dists == {"rlhf-plugin-example"}


def test_package_installed_after_the_project_is_never_imported_by_it():
    """In a fresh process the example is not imported until discovery reads its entry points."""
    code = textwrap.dedent("""
        import sys
        import rlhf_lightning, rlhf_lightning.rewards, rlhf_lightning.constraints, rlhf_lightning.losses
        assert "rlhf_plugin_example" not in sys.modules
        from rlhf_lightning import registry
        assert "rlhf_plugin_example" not in sys.modules
        assert "dpop" in registry.names("preference_losses")
        assert "rlhf_plugin_example" in sys.modules
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_package_imports_stay_light():
    code = ("import sys, rlhf_lightning.rewards, rlhf_lightning.constraints, rlhf_lightning.rewards.model, "
            "rlhf_lightning.constraints.classifier, rlhf_lightning.registry\n"
            "from rlhf_lightning import RewardFunction, ConstraintChecker, PreferenceLoss\n"
            "assert 'transformers' not in sys.modules, 'transformers imported'\n"
            "import rlhf_lightning.losses, rlhf_lightning.algorithms\n"
            "assert 'lightning' not in sys.modules and 'transformers' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- mocked entry points


def test_mocked_good_plugin_is_listed_and_resolved(monkeypatch):
    install_fake_entry_points(monkeypatch, [ep("acme_const", "GoodReward", version="4.5")])
    assert "acme_const" in registry.names("rewards")
    assert registry.get("rewards", "acme_const") is GoodReward
    info = next(i for i in registry.plugins("rewards") if i.name == "acme_const")
    assert (info.distribution, info.version, info.ok, info.builtin) == ("acme-rlhf-plugins", "4.5", True, False)
    assert info.description == "A mocked third-party reward: scores 2.0 for every sample."
    assert registry.name_of(GoodReward(1.0)) == "acme_const"


def test_import_failure_is_reported_and_isolated(monkeypatch):
    install_fake_entry_points(monkeypatch, [
        FakeEntryPoint("broken", "acme_missing_module_xyz:Reward", "rlhf_lightning.rewards", dist="acme-broken"),
        ep("fine", "GoodReward"),
    ])
    [bad] = registry.broken()
    assert (bad.name, bad.distribution) == ("broken", "acme-broken")
    assert "ModuleNotFoundError" in bad.error and "acme_missing_module_xyz" in bad.error
    assert "broken" not in registry.names("rewards")
    assert registry.get("rewards", "fine") is GoodReward and registry.get("rewards", "length") is LengthReward
    with pytest.raises(PluginError, match=r"'broken' from acme-broken is broken: import of"):
        registry.get("rewards", "broken")


def test_duplicate_names_fail_loudly(monkeypatch):
    install_fake_entry_points(monkeypatch, [
        ep("dup", "GoodReward", dist="acme-one"),
        FakeEntryPoint("dup", "rlhf_lightning.rewards.rules:KeywordReward", "rlhf_lightning.rewards", dist="acme-two"),
        ep("length", "GoodReward", dist="acme-shadow"),  # clashes with a built-in
        ep("same", "GoodReward", dist="acme-one"), ep("same", "GoodReward", dist="acme_one"),  # one dist seen twice
    ])
    with pytest.raises(PluginError, match=r"Duplicate rewards plugin name 'dup'.*acme-one.*acme-two"):
        registry.get("rewards", "dup")
    with pytest.raises(PluginError, match=r"'length'.*rlhf-lightning.*acme-shadow|'length'.*acme-shadow.*rlhf"):
        registry.get("rewards", "length")
    assert "dup" not in registry.names("rewards") and "length" not in registry.names("rewards")
    assert registry.get("rewards", "same") is GoodReward


def test_not_a_subclass_or_not_a_class_is_broken(monkeypatch):
    install_fake_entry_points(monkeypatch, [ep("plain", "NotAReward"), ep("func", "not_a_class"),
                                            ep("wrong_group", "GoodConstraint")])
    errors = {i.name: i.error for i in registry.broken("rewards")}
    assert "not a subclass of rlhf_lightning.rewards.base.RewardFunction" in errors["plain"]
    assert "not a class" in errors["func"]
    assert "not a subclass" in errors["wrong_group"]
    with pytest.raises(PluginError, match="not a subclass"):
        registry.get("rewards", "plain")


def test_unknown_names_and_groups_list_what_exists():
    with pytest.raises(PluginError, match=r"Unknown rewards plugin 'nope'\. Available: .*keyword, length"):
        registry.get("rewards", "nope")
    with pytest.raises(PluginError, match=r"Unknown plugin group 'reward'.*rewards, constraints"):
        registry.names("reward")
    assert issubclass(PluginError, RLHFError)


def test_kill_switch_keeps_only_builtins(monkeypatch):
    install_fake_entry_points(monkeypatch, [ep("acme", "GoodReward")])
    monkeypatch.setenv(registry.DISABLE_ENV, "1")
    registry.reset()
    assert "acme" not in registry.names("rewards") and "distinct_ngrams" not in registry.names("rewards")
    assert BUILTIN_REWARDS <= set(registry.names("rewards"))
    assert all(i.builtin for i in registry.plugins())
    with pytest.raises(PluginError, match="third-party plugins are off"):
        registry.get("rewards", "acme")


def test_discovery_runs_once(monkeypatch):
    calls = []
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: calls.append(kw) or real(**kw))
    registry.names("rewards")
    registry.get("constraints", "max_length")
    registry.prepare_for_parsing()
    assert len(calls) == len(registry.GROUPS)


# ---------------------------------------------------------------- YAML


class Holder:
    def __init__(self, rewards: list[RewardFunction], constraint: ConstraintChecker | None = None) -> None:
        self.rewards = rewards
        self.constraint = constraint


def parse_yaml(tmp_path, text):
    registry.prepare_for_parsing()
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_class_arguments(Holder, "holder")
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    cfg = parser.parse_args(["--config", str(path)])
    return parser, cfg


def test_yaml_three_spellings_and_validation(tmp_path):
    parser, cfg = parse_yaml(tmp_path, """
        holder:
          rewards:
            - class_path: length              # entry-point name
              init_args: {target: 7}
            - class_path: KeywordReward       # class name
              init_args: {keywords: [hi]}
            - class_path: rlhf_lightning.rewards.rules.RegexReward   # import path
              init_args: {pattern: "a+"}
            - class_path: distinct_ngrams     # third-party entry-point name
          constraint:
            class_path: classifier            # same name in two groups: resolved by the option's type
            init_args: {model: some/model}
    """)
    paths = [r.class_path for r in cfg.holder.rewards]
    assert paths[:3] == ["rlhf_lightning.rewards.rules.LengthReward", "rlhf_lightning.rewards.rules.KeywordReward",
                         "rlhf_lightning.rewards.rules.RegexReward"]
    assert paths[3] == "rlhf_plugin_example.repetition.DistinctNgramReward"
    assert cfg.holder.constraint.class_path == "rlhf_lightning.constraints.classifier.ClassifierConstraint"
    holder = parser.instantiate(cfg).holder
    assert [type(r) for r in holder.rewards[:3]] == [LengthReward, KeywordReward, RegexReward]
    assert holder.rewards[0].target == 7 and holder.constraint.threshold == 0.5
    assert "class_path: rlhf_lightning.rewards.rules.LengthReward" in parser.dump(cfg)  # dumps are explicit


def test_yaml_mocked_plugin_by_name(tmp_path, monkeypatch):
    install_fake_entry_points(monkeypatch, [ep("acme", "GoodReward")])
    parser, cfg = parse_yaml(tmp_path, """
        holder:
          rewards: [{class_path: acme, init_args: {value: 3.5}}]
    """)
    [reward] = parser.instantiate(cfg).holder.rewards
    assert isinstance(reward, GoodReward) and reward(["p"], ["c"]) == [3.5]


@pytest.mark.parametrize(("yaml", "match"), [
    ("rewards: [{class_path: nope}]", r"Unknown plugin 'nope'\. Available rewards: .*length"),
    ("rewards: [{class_path: max_length}]", r"Unknown plugin 'max_length'"),  # a constraint name, not a reward
    ("rewards: [{class_path: length, init_args: {targett: 3}}]", r"targett"),
    ("rewards: [{class_path: length, init_args: {target: many}}]", r"target"),
])
def test_yaml_errors_at_parse_time(tmp_path, yaml, match):
    with pytest.raises(Exception, match=match):
        parse_yaml(tmp_path, f"holder:\n  {yaml}\n")


def test_yaml_duplicate_name_is_refused(tmp_path, monkeypatch):
    install_fake_entry_points(monkeypatch, [ep("dup", "GoodReward", dist="a"), ep("dup", "GoodReward", dist="b")])
    with pytest.raises(Exception, match=r"Duplicate rewards plugin name 'dup'"):
        parse_yaml(tmp_path, "holder:\n  rewards: [{class_path: dup}]\n")


class Shape:
    """Not a plugin base: the YAML hook must leave its resolution to jsonargparse."""


class Circle(Shape):
    def __init__(self, radius: float = 1.0) -> None:
        self.radius = radius


def test_hook_leaves_other_types_alone():
    registry.prepare_for_parsing()
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--shape", type=Shape)
    parser.add_argument("--maybe", type=list[RewardFunction] | None, default=None)
    cfg = parser.parse_args(["--shape", '{"class_path": "Circle", "init_args": {"radius": 2}}',
                             "--maybe", '[{"class_path": "length"}]'])
    assert cfg.shape.class_path == "tests.test_registry.Circle"
    assert cfg.maybe[0].class_path == "rlhf_lightning.rewards.rules.LengthReward"
    with pytest.raises(Exception) as info:
        parser.parse_args(["--shape", '{"class_path": "Square"}'])
    assert "Unknown plugin" not in str(info.value)
