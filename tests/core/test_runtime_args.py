"""Runtime argument parsing: typed options from the baked declaration, keys read-only."""

from __future__ import annotations

from pathlib import Path

import pytest
from fata.config import load
from fata.runtime.args import parse_appliance_args, runtime_parser, split_argv

from .test_config import GOOD, write


@pytest.fixture
def baked(tmp_path: Path) -> dict:
    return load(write(tmp_path, GOOD)).bake({})


def test_split_at_double_dash() -> None:
    assert split_argv(["--log-level", "debug", "--", "--port", "1"]) == (
        ["--log-level", "debug"], ["--port", "1"])
    assert split_argv(["--trace", "t.json"]) == (["--trace", "t.json"], [])


def test_typed_defaults_and_repeats(baked: dict) -> None:
    ns = parse_appliance_args(baked, [])
    assert ns.port == 7 and ns.peer == [] and ns.net == "socket" and ns.mode == "fast"
    ns = parse_appliance_args(baked, ["--port", "53", "--peer", "a", "--peer", "b"])
    assert ns.port == 53 and ns.peer == ["a", "b"]


def test_bad_value_exits_with_usage_message(baked: dict, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        parse_appliance_args(baked, ["--port", "fifty"])
    assert info.value.code == 2
    assert "invalid int value: 'fifty'" in capsys.readouterr().err


def test_runtime_options_include_log_level_and_trace(baked: dict) -> None:
    ns = runtime_parser(baked).parse_args(["--log-level", "debug", "--trace", "x.json"])
    assert ns.log_level == "debug" and ns.trace == "x.json"
