"""One appliance directory, two images: ``--key role=controller`` builds the
learning-switch controller and ``--key ports=N`` a switch of N ports, and each image holds
only the role it was built for (the other role's modules are not in its closure)."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from fata import image
from fata.image.manifest import MANIFEST_NAME

APPLIANCE = Path(__file__).resolve().parents[2] / "appliances" / "openflow_switch"
PKG = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/fata_openflow_switch/"
SWITCH_ONLY = {"switch.py", "flow_table.py", "packet.py", "rewrite.py", "group.py", "meter.py",
               "unikernel.py", "liveness.py"}
CONTROLLER_ONLY = {"controller.py", "l2_controller.py", "of10.py", "controller_unikernel.py"}


def modules(path: Path) -> tuple[dict, set[str]]:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST_NAME))
    names = {e["path"] for e in manifest["files"]}
    ours = {n[len(PKG):].removesuffix("c") for n in names if n.startswith(PKG)}
    return manifest, ours


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("images")
    quiet = lambda *a: None  # noqa: E731
    return {"controller": image.build(APPLIANCE, {"role": "controller"}, out, log=quiet),
            "switch": image.build(APPLIANCE, {"ports": "6"}, out, log=quiet)}


def test_the_controller_image_holds_only_the_controller(images: dict[str, Path]) -> None:
    manifest, ours = modules(images["controller"])
    assert manifest["config"]["entry"] == "fata_openflow_switch.controller_unikernel:start"
    assert not any(n.startswith("port") for n in manifest["config"]["devices"])
    assert [a["name"] for a in manifest["config"]["args"]][:2] == ["listen", "port"]
    assert CONTROLLER_ONLY <= ours, ours
    assert not SWITCH_ONLY & ours, SWITCH_ONLY & ours


def test_the_switch_image_has_its_ports_and_no_controller(images: dict[str, Path]) -> None:
    manifest, ours = modules(images["switch"])
    assert manifest["config"]["entry"] == "fata_openflow_switch.unikernel:start"
    assert sorted(n for n in manifest["config"]["devices"] if n.startswith("port")) == [
        f"port{n}" for n in range(1, 7)]
    assert SWITCH_ONLY <= ours, ours
    assert not CONTROLLER_ONLY & ours, CONTROLLER_ONLY & ours
    assert images["switch"].name != images["controller"].name  # the keys name the file
