"""One source per default: the settings registry (stacks/config.py) against cdk.json and the docs' tables."""

from __future__ import annotations

import json

import pytest

from scripts import settings_table
from stacks.config import SETTINGS, AppConfig, ConfigError, InstanceTypeSetting
from tests.conftest import ROOT

ALL = [spec for section in SETTINGS.values() for spec in section]


@pytest.mark.parametrize("document", settings_table.DOCUMENTS)
def test_the_configuration_tables_are_the_registrys(document):
    text = (ROOT / document).read_text()
    assert settings_table.blocks(text), f"{document} has no <!-- settings-table: ... --> block"
    assert settings_table.rewrite(text) == text, (
        f"{document}'s configuration table differs from stacks/config.py: "
        "run .venv/bin/python -m scripts.settings_table"
    )


def test_each_table_lists_the_sections_its_page_is_about():
    def sections(document):
        return [s for block in settings_table.blocks((ROOT / document).read_text()) for s in block]

    assert sorted(sections("docs/configuration.md")) == sorted(SETTINGS)
    assert sections("docs/api.md") == ["api"]
    assert sections("docs/pipeline.md") == ["training", "serving", "notifications"]


def test_a_stale_table_is_rewritten_and_the_check_fails(tmp_path):
    for document in settings_table.DOCUMENTS:
        (tmp_path / document).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / document).write_text(
            (ROOT / document).read_text().replace("| `apiRateLimit` | `5` |", "| `apiRateLimit` | `50` |")
        )
    assert settings_table.main(["--check"], root=tmp_path) == 1
    assert settings_table.main([], root=tmp_path) == 0
    assert settings_table.main(["--check"], root=tmp_path) == 0
    assert "| `apiRateLimit` | `5` |" in (tmp_path / "docs/configuration.md").read_text()


def test_cdk_json_carries_only_the_app_and_feature_flags():
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert set(cdk_json) == {"app", "watch", "context"}
    assert [key for key in cdk_json["context"] if not key.startswith("@aws-cdk")] == []


def test_every_key_is_declared_once():
    keys = [spec.key for spec in ALL]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("spec", [s for s in ALL if s.default not in (None, "")], ids=lambda s: s.key)
def test_each_default_is_a_value_its_own_rule_accepts(spec):
    if isinstance(spec, InstanceTypeSetting):
        assert spec.parse(spec.default) == spec.default
    else:
        assert spec.parse(spec.default) == spec.default and spec.parse(str(spec.default)) == spec.default


def test_an_empty_context_gives_the_dataclass_defaults():
    config = AppConfig.load({}.get, {})
    assert config.stack_name == SETTINGS["stack"][0].default
    for section in ("storage", "training", "serving", "notifications", "api", "monitoring"):
        assert getattr(config, section) == type(getattr(config, section))(), section


def test_errors_name_the_key_and_the_registrys_rule():
    (spec,) = [s for s in ALL if s.key == "idleMinutes"]
    with pytest.raises(ConfigError) as error:
        AppConfig.load({"idleMinutes": spec.maximum + 1}.get, {})
    assert error.value.key == "idleMinutes" and spec.rule in str(error.value)
