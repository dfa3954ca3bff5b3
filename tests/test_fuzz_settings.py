"""Property-based fuzzing of zstest.toml (settings.py): any TOML of zstest's keys and command
tables with any values, and any bytes, is loaded or is one sentence and exit 2 naming the file,
for every command (`config show` here), never a traceback.
"""

from __future__ import annotations

import datetime
import json

from hypothesis import given, strategies as st

from fuzzing import assert_cli_ok_or_one_sentence, assert_one_sentence, files_under, fuzz, run_cli
from zstest import cli, settings
from zstest.errors import ZstestError

TOML_SCALAR = st.one_of(
    st.integers(-2 ** 63, 2 ** 63 - 1), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=10), st.sampled_from(["~nosuchuser/x", "~", "6.1", "../..", "/dev/null",
                                           "base", "kvm", "", "\x1b[2J"]),
    st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 1, 1)),
    st.dates(), st.times())
TOML_VALUE = st.recursive(TOML_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "jobs", "x"]), inner,
                                                 max_size=2)), max_leaves=6)
TOP_KEYS = sorted(settings.KEYS) + ["nosuch"]
COMMANDS = sorted(settings._command_names(cli.cli))
OPTIONS = ["jobs", "quiet", "out", "configs", "suite", "timeout", "memory_mb", "accel", "json",
           "k", "runs", "base", "allow_gaps", "lore_url", "nosuch", "x"]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)          # a JSON string is a TOML basic string
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def toml_file(draw) -> str:
    lines = [f"{k} = {toml_value(draw(TOML_VALUE))}"
             for k in draw(st.lists(st.sampled_from(TOP_KEYS), max_size=4, unique=True))]
    for table in draw(st.lists(st.sampled_from(COMMANDS + ["nosuch"]), max_size=3, unique=True)):
        lines.append(f"[{table}]")
        lines += [f"{k} = {toml_value(draw(TOML_VALUE))}"
                  for k in draw(st.lists(st.sampled_from(OPTIONS), max_size=3, unique=True))]
    return "\n".join(lines) + "\n"


def env_for(monkeypatch, home):
    (home / "xdg").mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    monkeypatch.setenv("ZSTEST_CACHE", str(home / "cache"))
    monkeypatch.setenv("ZSTEST_KERNEL", "")


@fuzz(120)
@given(text=toml_file())
def test_any_zstest_toml_loads_or_is_one_sentence(tmp_path_factory, monkeypatch, text):
    home = tmp_path_factory.mktemp("toml")
    env_for(monkeypatch, home)
    (home / "zstest.toml").write_text(text)
    try:
        loaded = settings.load_settings(cli.cli, [], cwd=home)
    except ZstestError as err:
        assert_one_sentence(err)
        assert str(home / "zstest.toml") in err.message
        return
    settings.default_map(cli.cli, loaded)
    settings.effective(cli.cli, loaded)


@fuzz(12)
@given(content=st.one_of(toml_file().map(str.encode), st.binary(max_size=100)))
def test_config_show_and_cache_show_exit_0_or_2(tmp_path_factory, monkeypatch, content):
    home = tmp_path_factory.mktemp("cli")
    env_for(monkeypatch, home)
    monkeypatch.chdir(home)
    (home / "zstest.toml").write_bytes(content)
    before = files_under(home)
    for argv in (["config", "show"], ["cache", "show"]):
        code, _, err = run_cli(argv)
        assert_cli_ok_or_one_sentence(code, err)
    assert {f for f in files_under(home) - before if not f.startswith("cache")} == set()
