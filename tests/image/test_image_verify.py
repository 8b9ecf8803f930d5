"""Sealing: a modified, truncated or foreign-signed image is refused, naming what differs."""

from __future__ import annotations

import base64
import json
import re
import zipfile
from pathlib import Path

import pytest
from fata import image
from fata.image.archive import Member, write_archive
from fata.image.keys import load_signing_key
from fata.image.manifest import MANIFEST_NAME, SIGNATURE_NAME, dumps, signature_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import fata_cli, flip_byte, member_data_offset

MEMBER = "lib/python3.11/fata_tiny/greeting.pyc"
MEMBER_RE = re.escape(MEMBER)


def test_intact_image_verifies(tiny_image: Path) -> None:
    manifest = image.verify(tiny_image)
    assert manifest["name"] == "tiny"


def test_flipped_byte_in_a_member_is_refused_naming_it(tiny_image: Path, tmp_path: Path) -> None:
    bad = flip_byte(tiny_image, tmp_path / "bad.fata", member_data_offset(tiny_image, MEMBER))
    with pytest.raises(image.ImageError, match=f"member {MEMBER_RE} "):
        image.verify(bad)
    with pytest.raises(image.ImageError, match=f"member {MEMBER_RE} "):
        image.prepare(bad, [])
    result = fata_cli("verify", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith("fata: ") and MEMBER in result.stderr
    assert "Traceback" not in result.stderr


def test_flipped_byte_in_the_manifest_breaks_the_signature(tiny_image: Path,
                                                          tmp_path: Path) -> None:
    bad = flip_byte(tiny_image, tmp_path / "bad.fata",
                    member_data_offset(tiny_image, MANIFEST_NAME))
    with pytest.raises(image.ImageError, match=r"MANIFEST\.json|corrupt"):
        image.verify(bad)


def _rewrite(src: Path, dst: Path, change) -> Path:
    """Rewrite an image's members through ``change(dict) -> dict``, keeping the signature."""
    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members = change(members)
    write_archive(dst, [Member(n, d) for n, d in members.items()], 315532800)
    return dst


def test_a_member_swapped_for_valid_bytecode_is_refused(tiny_image: Path, tmp_path: Path) -> None:
    # Not corruption: a well-formed replacement (the CRC is right), which only the manifest's
    # digest catches.
    evil = compile("print('evil')", "greeting.py", "exec")
    import importlib._bootstrap_external as bootstrap  # the same pyc writer images use
    pyc = bytes(bootstrap._code_to_hash_pyc(evil, b"\0" * 8, False))

    def swap(members: dict) -> dict:
        return {**members, MEMBER: pyc}

    bad = _rewrite(tiny_image, tmp_path / "bad.fata", swap)
    with pytest.raises(image.ImageError, match=f"member {MEMBER_RE} differs from its manifest"):
        image.verify(bad)


def test_extra_and_missing_members_are_refused(tiny_image: Path, tmp_path: Path) -> None:
    extra = _rewrite(tiny_image, tmp_path / "extra.fata",
                     lambda m: {**m, "lib/python3.11/sitecustomize.pyc": b"x"})
    with pytest.raises(image.ImageError, match=r"sitecustomize\.pyc is not in the manifest"):
        image.verify(extra)
    missing = _rewrite(tiny_image, tmp_path / "missing.fata",
                       lambda m: {k: v for k, v in m.items() if k != MEMBER})
    with pytest.raises(image.ImageError, match=f"{MEMBER_RE} is listed in the manifest but"):
        image.verify(missing)


def test_truncated_image_is_refused(tiny_image: Path, tmp_path: Path) -> None:
    data = tiny_image.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 10):
        bad = tmp_path / f"cut{cut}.fata"
        bad.write_bytes(data[:cut])
        with pytest.raises(image.ImageError, match="not a Fata image"):
            image.verify(bad)


def test_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(image.ImageError, match="no such image"):
        image.verify(tmp_path / "nothing.fata")
    (tmp_path / "text.fata").write_text("hello")
    with pytest.raises(image.ImageError, match="not a Fata image"):
        image.verify(tmp_path / "text.fata")
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(image.ImageError, match=r"no MANIFEST\.json"):
        image.verify(plain)
    with zipfile.ZipFile(tmp_path / "slip.zip", "w") as archive:
        archive.writestr("../evil", "hi")
    with pytest.raises(image.ImageError, match="unsafe member name"):
        image.verify(tmp_path / "slip.zip")


def test_signed_by_another_key(tiny_dir: Path, tmp_path: Path) -> None:
    private, public = image.keygen(tmp_path / "release")
    assert private.stat().st_mode & 0o777 == 0o600
    with pytest.raises(image.ImageError, match="exists"):
        image.keygen(tmp_path / "release")
    signed = image.build(tiny_dir, {}, tmp_path / "out", sign_key=private, log=lambda *a: None)
    with pytest.raises(image.ImageError, match="not trusted here"):
        image.verify(signed)
    assert image.verify(signed, public)["key_label"] == "release"
    assert image.verify(signed, trust=[public])["name"] == "tiny"
    _, other_public = image.keygen(tmp_path / "other")
    with pytest.raises(image.ImageError, match="not trusted"):
        image.verify(signed, other_public)
    assert fata_cli("verify", str(signed), "--key", str(public)).returncode == 0
    result = fata_cli("verify", str(signed))
    assert result.returncode == 1 and "not trusted" in result.stderr


def test_resigned_manifest_with_forged_key_id_fails(tiny_image: Path, tmp_path: Path) -> None:
    # An attacker edits the manifest and signs it with their own key but claims the
    # development key's id: the signature does not verify under the real key.
    attacker, _ = image.keygen(tmp_path / "attacker")
    key = load_signing_key(attacker)

    def forge(members: dict) -> dict:
        manifest = json.loads(members[MANIFEST_NAME])
        manifest["config"]["description"] = "forged"
        data = dumps(manifest)
        return {**members, MANIFEST_NAME: data,
                SIGNATURE_NAME: signature_bytes(manifest["key_id"], key.sign(data))}

    bad = _rewrite(tiny_image, tmp_path / "forged.fata", forge)
    with pytest.raises(image.ImageError, match="signature does not verify"):
        image.verify(bad)


def test_garbage_signature(tiny_image: Path, tmp_path: Path) -> None:
    def garble(members: dict) -> dict:
        doc = json.loads(members[SIGNATURE_NAME])
        doc["signature"] = base64.b64encode(b"x" * 10).decode()
        return {**members, SIGNATURE_NAME: json.dumps(doc).encode()}

    bad = _rewrite(tiny_image, tmp_path / "garbled.fata", garble)
    with pytest.raises(image.ImageError, match="not a valid ed25519 signature"):
        image.verify(bad)


def _layout(path: Path) -> tuple[dict[str, tuple[int, int]], int]:
    """Where each member's stored bytes lie in the file (name -> [start, end)), and where
    the central directory starts (it runs to the end of the file)."""
    import struct

    data = path.read_bytes()
    spans = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    for info in infos:
        header = info.header_offset
        name_len, extra_len = struct.unpack("<HH", data[header + 26: header + 30])
        start = header + 30 + name_len + extra_len
        spans[info.filename] = (start, start + info.compress_size)
    directory = max(end for _, end in spans.values())
    return spans, directory


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_is_an_image_error_never_a_crash(tiny_image: Path, tmp_path: Path,
                                                    data: st.DataObject) -> None:
    """Damage to a member's bytes is refused naming that member; a truncated image is not
    a Fata image; damage elsewhere (zip headers) is refused or, where the zip reader does
    not use the field, accepted, and then only with the signed manifest intact."""
    original = tiny_image.read_bytes()
    damaged = bytearray(original)
    how = data.draw(st.sampled_from(["flip", "truncate", "overwrite"]))
    at = data.draw(st.integers(0, len(original) - 1))
    if how == "flip":
        damaged[at] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        damaged = damaged[:at]
    else:
        chunk = data.draw(st.binary(min_size=1, max_size=64))
        damaged[at: at + len(chunk)] = chunk
    if bytes(damaged) == original:
        return
    path = tmp_path / "damaged.fata"
    path.write_bytes(bytes(damaged))
    spans, directory = _layout(tiny_image)
    changed = {i for i in range(min(len(damaged), len(original))) if damaged[i] != original[i]}
    hit = sorted(name for name, (start, end) in spans.items()
                 if any(start <= i < end for i in changed))
    if how == "truncate":
        with pytest.raises(image.ImageError, match="not a Fata image"):
            image.verify(path)
    elif hit and not any(i >= directory for i in changed):
        # the archive still opens; reading a damaged member fails its CRC (or its
        # decompression) or its digest: the error names it
        with pytest.raises(image.ImageError) as refused:
            image.verify(path)
        assert any(name in str(refused.value) for name in hit), (hit, str(refused.value))
    else:
        try:
            manifest = image.verify(path)
        except image.ImageError as exc:
            assert str(exc).startswith(str(path)), str(exc)  # one sentence, naming the file
        else:
            assert not hit and manifest == image.verify(tiny_image)
