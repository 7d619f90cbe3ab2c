"""canonical_raft.config: the one table of settings, and what is derived from it."""

import os
import typing

import pytest

import canonical_raft as raft
from canonical_raft import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.timeout(30)


def test_tuning_page_table_is_generated_from_settings():
    with open(os.path.join(ROOT, "docs", "howto", "tuning.md")) as f:
        page = f.read()
    assert config.markdown_table() in page, \
        "docs/howto/tuning.md's table is stale: paste `python -m canonical_raft.config`"


def test_typed_dict_matches_settings():
    hints = typing.get_type_hints(config.Settings)
    assert list(hints) == [s.name for s in config.SETTINGS]
    for s in config.SETTINGS:
        assert hints[s.name] is s.kind, s.name


def test_defaults_pass_their_own_checks():
    checked = config.validate({})
    assert checked.as_dict() == config.defaults()
    for s in config.SETTINGS:
        assert isinstance(s.default, s.kind) and not (s.kind is int and isinstance(s.default, bool))
        assert s.check(s.default) == s.default


def test_every_setting_is_in_node_docstring():
    doc = raft.Node.__doc__
    for s in config.SETTINGS:
        assert f"{s.name} (default {s.shown()})" in doc


@pytest.mark.parametrize("setting", config.SETTINGS, ids=lambda s: s.name)
def test_each_setting_refuses_a_wrong_type(setting):
    wrong = 1 if setting.kind in (bool, str) else "1"
    with pytest.raises(TypeError, match=setting.name):
        config.validate({setting.name: wrong})


@pytest.mark.parametrize("setting", [s for s in config.SETTINGS if s.kind in (int, float)],
                         ids=lambda s: s.name)
def test_each_number_refuses_out_of_range(setting):
    too_big = 24 * 3600 + 1 if setting.kind is float else int(setting.high) + 1
    with pytest.raises(ValueError, match=setting.name):
        config.validate({setting.name: too_big})


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(TypeError, match="max_inflight.*known: .*election_timeout"):
        config.validate({"max_inflight": 3})


def test_config_is_read_only():
    checked = config.validate({"segment_size": 1 << 20})
    assert checked.segment_size == 1 << 20
    with pytest.raises(AttributeError):
        checked.segment_size = 5


def test_shown_units():
    assert config.BY_NAME["segment_size"].shown() == "16 MiB"
    assert config.BY_NAME["max_batch_bytes"].shown(0) == "0"
    assert config.BY_NAME["election_timeout"].shown() == "1.0 s"
