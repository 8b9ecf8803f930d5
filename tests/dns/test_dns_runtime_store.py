"""``--zone`` through the run-time data store ``zones`` (``kv_runtime()``): host paths as
before by default, confined to one directory with ``fata run --kv zones=DIR``."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from dnstest_util import LAB_ZONE, RunningAppliance, query, rrs, wait_until
from fata.platform.kv_host import HostKV
from fata_dns.errors import ZoneError
from fata_dns.sources import load_catalog

INCLUDING = ("$ORIGIN store.test.\n$TTL 60\n@ SOA ns hm {serial} 2 3 4 5\n@ NS ns\n"
             "ns A 192.0.2.1\n$INCLUDE hosts/www.inc\n")


def test_zones_and_includes_come_from_the_chosen_directory(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "hosts").mkdir(parents=True)
    (store / "s.zone").write_text(INCLUDING.format(serial=1))
    (store / "hosts" / "www.inc").write_text("www A 192.0.2.10\n")
    (store / "lab.zone").symlink_to(tmp_path / "lab-outside.zone")  # out of the store
    (tmp_path / "lab-outside.zone").write_text(LAB_ZONE)
    catalog = load_catalog(["s.zone"], None, HostKV(store))
    zone = catalog.zones[b"\x05store\x04test\x00"]
    assert b"\x03www\x05store\x04test\x00" in zone.nodes
    for key in ["lab.zone", "../lab-outside.zone", str(tmp_path / "lab-outside.zone")]:
        with pytest.raises(ZoneError) as exc:
            load_catalog([key], None, HostKV(store))
        assert str(exc.value) == f"{key}: cannot read zone file: No such file or directory"
    (store / "escape.zone").write_text(INCLUDING.format(serial=1).replace(
        "hosts/www.inc", "../lab-outside.zone"))
    with pytest.raises(ZoneError) as exc:
        load_catalog(["escape.zone"], None, HostKV(store))
    assert exc.value.file == "escape.zone" and exc.value.line == 6
    assert "$INCLUDE ../lab-outside.zone: cannot read" in str(exc.value)


def test_kv_zones_dir_serves_keys_under_it_and_reloads(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "hosts").mkdir(parents=True)
    (store / "s.zone").write_text(INCLUDING.format(serial=1))
    (store / "hosts" / "www.inc").write_text("www A 192.0.2.10\n")
    a = RunningAppliance(["--zone", "s.zone"], tmp_path, runtime_args=("--kv", f"zones={store}"))
    try:
        a.wait("store.test.")
        assert rrs(query(a.port, "www.store.test").answer) == {"www.store.test. 60 A 192.0.2.10"}
        (store / "hosts" / "www.inc").write_text("www A 192.0.2.20\n")
        (store / "s.zone").write_text(INCLUDING.format(serial=2))
        a.signal(signal.SIGHUP)  # the store is read again: run-time data is not cached
        wait_until(lambda: "192.0.2.20" in str(query(a.port, "www.store.test").answer),
                   what="the reloaded zone", detail=a.output)
    finally:
        a.stop()


def test_a_zone_outside_the_chosen_directory_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    outside = tmp_path / "lab.zone"
    outside.write_text(LAB_ZONE)
    a = RunningAppliance(["--zone", str(outside)], tmp_path,
                         runtime_args=("--kv", f"zones={store}"))
    try:
        code = a.proc.wait(90)
    finally:
        a.stop()
    assert code != 0
    errors = [line for line in a.output().splitlines() if "error" in line]
    assert len(errors) == 1, a.output()
    assert f"{outside}: cannot read zone file: No such file or directory" in errors[0]


SIGNED_STYLE = "$TTL 60\n@ SOA ns hm 7 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.7\n"
"""A zone file as dnssec-signzone and many tools write it: no $ORIGIN, a name giving none."""


def test_zone_origin_given_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "signed.db").write_text(SIGNED_STYLE)
    with pytest.raises(ZoneError) as exc:  # the file alone says nothing of its origin
        load_catalog(["signed.db"], None, HostKV(tmp_path))
    assert "no $ORIGIN" in str(exc.value)
    for key in ("given.test=signed.db", "given.test.=signed.db"):
        catalog = load_catalog([key], None, HostKV(tmp_path))
        zone = catalog.zones[b"\x05given\x04test\x00"]
        assert b"\x03www\x05given\x04test\x00" in zone.nodes
    with pytest.raises(ZoneError) as exc:
        load_catalog(["bad..name=signed.db"], None, HostKV(tmp_path))
    assert "'bad..name' is not a domain name" in str(exc.value)
    (tmp_path / "a=b").mkdir()
    (tmp_path / "a=b" / "x.test.zone").write_text(SIGNED_STYLE)  # a path with "=" in it
    assert list(load_catalog(["a=b/x.test.zone"], None, HostKV(tmp_path)).zones) == [
        b"\x01x\x04test\x00"]


def test_the_appliance_serves_a_zone_whose_origin_is_given(tmp_path: Path) -> None:
    (tmp_path / "signed.db").write_text(SIGNED_STYLE)
    a = RunningAppliance(["--zone", f"given.test={tmp_path / 'signed.db'}"], tmp_path)
    try:
        a.wait("given.test.")
        assert rrs(query(a.port, "www.given.test").answer) == {"www.given.test. 60 A 192.0.2.7"}
    finally:
        a.stop()
