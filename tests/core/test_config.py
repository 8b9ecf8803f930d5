"""The configuration DSL: declarations, keys, baking, and errors located at file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from fata.config import ConfigError, load

GOOD = """\
from fata.config import Appliance, arg, clock, console, key, kv_ro, lifecycle, stack

appliance = Appliance(
    name="echo",
    version="1.2.3",
    entry="fata_echo.unikernel:start",
    devices={"stack": stack(), "data": kv_ro("data"), "clock": clock(),
             "console": console(), "lifecycle": lifecycle()},
    args=[arg("port", type=int, default=7, help="port"),
          arg("peer", type=str, multiple=True, help="peers")],
    keys=[key("mode", choices=["fast", "small"], default="fast")],
    include=["json"],
)
"""


def write(tmp_path: Path, text: str, data: bool = True) -> Path:
    (tmp_path / "config.py").write_text(textwrap.dedent(text))
    if data:
        (tmp_path / "data").mkdir(exist_ok=True)
    return tmp_path


def test_good_config_bakes_keys_devices_and_platform(tmp_path: Path) -> None:
    app = load(write(tmp_path, GOOD))
    baked = app.bake({"net": "direct"})
    assert baked["name"] == "echo" and baked["entry"] == "fata_echo.unikernel:start"
    assert baked["keys"] == {"loop": "asyncio", "mode": "fast", "net": "direct"}
    assert "fata.runtime.uvloop_loop" not in baked["platform_modules"]
    assert "fata.runtime.uvloop_loop" in app.bake({"loop": "uvloop"})["platform_modules"]
    assert baked["devices"]["data"] == {"kind": "kv_ro", "directory": "data"}
    assert "fata.platform.direct" in baked["platform_modules"]
    assert "fata.platform.socket_stack" not in baked["platform_modules"]
    assert app.bake({})["keys"]["net"] == "socket"
    assert [a["name"] for a in baked["args"]] == ["port", "peer"]
    assert baked["args"][1]["default"] == []


def test_an_appliance_chooses_its_default_loop(tmp_path: Path) -> None:
    app = load(write(tmp_path, GOOD.replace('include=["json"],', 'include=["json"], loop="uvloop",')))
    assert app.bake({})["keys"]["loop"] == "uvloop"
    assert "fata.runtime.uvloop_loop" in app.bake({})["platform_modules"]
    assert app.bake({"loop": "asyncio"})["keys"]["loop"] == "asyncio"
    with pytest.raises(ConfigError, match="loop 'trio' is not one of asyncio, uvloop"):
        load(write(tmp_path, GOOD.replace('include=["json"],', 'include=["json"], loop="trio",')))


def test_unknown_key_and_bad_value_are_clear(tmp_path: Path) -> None:
    app = load(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="no key 'colour'"):
        app.bake({"colour": "red"})
    with pytest.raises(ConfigError, match="'tap' is not one of socket, direct"):
        app.bake({"net": "tap"})


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("x = (\n", 1, "syntax error"),
        ("import nonexistent_module_xyz\n", 1, "ModuleNotFoundError"),
        ("from fata.config import arg\n\nport = arg('Port')\n", 3, "lower_snake_case"),
        ("from fata.config import arg\nx = 1\narg('port', type=int, default='53')\n", 3,
         "not of type int"),
        ("from fata.config import Appliance, stack\nappliance = Appliance(name='a', version='1',"
         " entry='nocolon', devices={})\n", 2, "package.module:function"),
        ("from fata.config import Appliance, kv_ro\n\nappliance = Appliance(name='a', version='1',"
         " entry='a.b:c',\n    devices={'d': kv_ro('missing')})\n", 4, "does not exist"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    write(tmp_path, text, data=False)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert message in str(info.value)
    assert info.value.file == str(tmp_path / "config.py")
    assert info.value.line == line
    assert str(info.value).startswith(f"{tmp_path / 'config.py'}:{line}: ")


def test_missing_appliance_variable_and_directory(tmp_path: Path) -> None:
    write(tmp_path, "x = 1\n")
    with pytest.raises(ConfigError, match=r"defines no `appliance"):
        load(tmp_path)
    with pytest.raises(ConfigError, match="not an appliance directory"):
        load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no config\.py"):
        load(tmp_path / "empty")


PORTS = """\
from fata.config import Appliance, block, console, netif, stack

appliance = Appliance(
    name="ports", version="1", entry="fata_ports.unikernel:start",
    devices={"inside": netif(), "uplink": netif("outside"), "log": block(),
             "stack": stack(netifs=["inside"]), "console": console()},
)
"""


def test_netif_and_block_devices_bake_their_run_time_names(tmp_path: Path) -> None:
    app = load(write(tmp_path, PORTS, data=False))
    baked = app.bake({"net": "direct"})
    assert baked["devices"]["inside"] == {"kind": "netif", "name": "inside"}
    assert baked["devices"]["uplink"] == {"kind": "netif", "name": "outside"}
    assert baked["devices"]["log"] == {"kind": "block", "name": "log"}
    assert baked["devices"]["stack"] == {"kind": "stack", "netifs": ["inside"]}
    assert {"fata.platform.netif", "fata.platform.block_file", "fata.platform.direct"} <= \
        set(baked["platform_modules"])
    with pytest.raises(ConfigError, match="--net direct"):
        app.bake({"net": "socket"})


@pytest.mark.parametrize(("devices", "message"), [
    ('{"stack": stack(netifs=["nope"])}', "'nope' is not a netif"),
    ('{"a": netif(), "stack": stack(netifs="a")}', "non-empty list"),
    ('{"a": netif("x"), "b": netif("x")}', "two netif devices are named 'x'"),
    ('{"a": netif("Bad Name")}', "must be lowercase"),
])
def test_bad_port_declarations_are_located(tmp_path: Path, devices: str, message: str) -> None:
    text = ("from fata.config import Appliance, netif, stack\n"
            f"appliance = Appliance(name='p', version='1', entry='p.u:start',\n"
            f"    devices={devices})\n")
    with pytest.raises(ConfigError, match=message) as exc:
        load(write(tmp_path, text, data=False))
    assert exc.value.file is not None and exc.value.file.endswith("config.py")
    assert exc.value.line is not None


def test_several_stacks(tmp_path: Path) -> None:
    text = ("from fata.config import Appliance, netif, stack\n"
            "appliance = Appliance(name='p', version='1', entry='p.u:start',\n"
            "    devices={DEVICES})\n")
    app = load(write(tmp_path, text.replace("DEVICES", '"a": stack(), "b": stack()'), False))
    assert app.bake({})["devices"]["b"] == {"kind": "stack"}  # two host stacks: fine
    with pytest.raises(ConfigError, match="need a port each"):
        app.bake({"net": "direct"})
    two = '"p1": netif(), "p2": netif(), "a": stack(netifs=["p1"]), "b": stack(netifs=["p2"])'
    app = load(write(tmp_path, text.replace("DEVICES", two), False))
    assert app.bake({"net": "direct"})["devices"]["b"] == {"kind": "stack", "netifs": ["p2"]}
    shared = '"p1": netif(), "a": stack(netifs=["p1"]), "b": stack(netifs=["p1"])'
    app = load(write(tmp_path, text.replace("DEVICES", shared), False))
    with pytest.raises(ConfigError, match="given to two stacks"):
        app.bake({"net": "direct"})


VARIANTS = """\
from fata.config import Appliance, arg, console, key, netif, stack, when

PORTS = {f"port{n}": netif() for n in range(1, 5)}
appliance = Appliance(
    name="sw", version="1", entry="sw.switch:start",
    devices={**PORTS, "stack": stack(), "console": console()},
    args=[arg("fail_mode", type=str, default="secure")],
    keys=[key("role", choices=["switch", "controller"], default="switch"),
          key("ports", choices=["2", "4", "6"], default="4")],
    variants=[
        when("ports", "2", devices={"port3": None, "port4": None}),
        when("ports", "6", devices={"port5": netif(), "port6": netif()}),
        when("role", "controller", entry="sw.controller:start",
             devices={f"port{n}": None for n in range(1, 7)},
             args=[arg("listen_port", type=int, default=6653)], include=["json"]),
    ],
)
"""


def test_variants_change_entry_devices_and_args_by_key(tmp_path: Path) -> None:
    app = load(write(tmp_path, VARIANTS, data=False))
    assert app.specialise({}) is app  # the defaults match no variant
    baked = app.specialise({}).bake({})
    assert [n for n in baked["devices"] if n.startswith("port")] == [
        "port1", "port2", "port3", "port4"]
    six = app.specialise({"ports": "6"}).bake({"ports": "6"})
    assert [n for n in six["devices"] if n.startswith("port")] == [
        f"port{n}" for n in range(1, 7)]
    two = app.specialise({"ports": "2"})
    assert sorted(two.devices) == ["console", "port1", "port2", "stack"]
    controller = app.specialise({"role": "controller", "ports": "6"})
    assert controller.entry == "sw.controller:start" and controller.entry_module == "sw.controller"
    assert sorted(controller.devices) == ["console", "stack"]
    assert [a.name for a in controller.args] == ["listen_port"]
    assert controller.include == ("json",)
    assert controller.directory == app.directory
    assert app.entry == "sw.switch:start" and "port1" in app.devices  # the base is untouched


@pytest.mark.parametrize(("variant", "message"), [
    ('when("colour", "red")', "when('colour', ...): no such key"),
    ('when("role", "router")', "when('role', 'router'): not one of switch, controller"),
    ('when("role", "controller", entry="nocolon")', "package.module:function"),
    ('when("role", "controller", devices={"x": 3})', "device 'x' is 3, not a device"),
])
def test_bad_variants_are_located(tmp_path: Path, variant: str, message: str) -> None:
    text = VARIANTS.replace('        when("ports", "2",', f'        {variant},\n        when("ports", "2",')
    write(tmp_path, text, data=False)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert message in str(info.value)
    assert info.value.file == str(tmp_path / "config.py") and info.value.line == 11


def test_a_variant_that_breaks_the_appliance_is_located_at_the_variant(tmp_path: Path) -> None:
    text = VARIANTS.replace('when("ports", "2", devices={"port3": None, "port4": None})',
                            'when("ports", "2", devices={"stack": stack(netifs=["port4"]),\n'
                            '                             "port4": None})')
    app = load(write(tmp_path, text, data=False))
    with pytest.raises(ConfigError) as info:
        app.specialise({"ports": "2"})
    assert "'port4' is not a netif() device" in str(info.value)
    assert info.value.file == str(tmp_path / "config.py") and info.value.line == 11
