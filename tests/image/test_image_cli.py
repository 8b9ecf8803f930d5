"""The image commands through the ``fata`` command line: outputs and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import fata_cli


def test_build_prints_the_image_path_last_and_keygen_signs(tiny_dir: Path,
                                                          tmp_path: Path) -> None:
    keygen = fata_cli("keygen", "--out", str(tmp_path / "k"))
    assert keygen.returncode == 0, keygen.stderr
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    result = fata_cli("build", str(tiny_dir), "--out", str(tmp_path / "out"),
                      "--sign", str(tmp_path / "k"))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "out" / "tiny-0.1.0-unix.fata" and path.is_file()
    verify = fata_cli("verify", str(path), "--key", str(tmp_path / "k.pub"))
    assert verify.returncode == 0 and "OK" in verify.stdout
    info = json.loads(fata_cli("inspect", "--json", str(path)).stdout)
    assert info["manifest"]["key_label"] == "k"
    run = fata_cli("run", str(path), "--trust", str(tmp_path / "k.pub"))
    assert run.returncode == 0, run.stderr
    refused = fata_cli("run", str(path))
    assert refused.returncode == 1 and "not trusted" in refused.stderr


def test_bad_inputs_give_one_line_and_no_traceback(tmp_path: Path, tiny_image: Path) -> None:
    truncated = tmp_path / "t.fata"
    truncated.write_bytes(tiny_image.read_bytes()[:5000])
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.json").write_text(json.dumps({"format": "fata-index/1", "images": [{
        "name": "tiny", "version": "1", "url": "tiny-1-unix.fata", "size": 3,
        "sha256": "0" * 64, "key_id": "x", "signature": "x"}]}))
    (site / "tiny-1-unix.fata").write_bytes(b"abc")
    cases = [
        ("verify", str(truncated)),
        ("inspect", str(truncated)),
        ("run", str(truncated)),
        ("build", str(tmp_path)),
        ("pull", "tiny", "--index", str(site), "--out", str(tmp_path / "o")),
        ("publish", str(truncated), "--index", str(tmp_path / "p")),
        ("keygen", "--out", str(tmp_path / "site" / "index.json")[:-5]),
    ]
    (tmp_path / "site" / "index.pub").write_text("x")  # keygen must refuse to overwrite
    for args in cases:
        result = fata_cli(*args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("fata: "), (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, args
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_build_warms_the_image_so_its_first_run_is_not_a_cold_start(
        tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fata build` verifies and extracts what it built, as the first `fata run` would; that
    run then needs only the digest and signature checks (the DNS first-answer budget)."""
    from fata import image
    from fata.image import run as image_run

    result = fata_cli("build", str(tiny_dir), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])

    def no_full_verification(*args: object, **kwargs: object) -> None:
        raise AssertionError("the image was not warmed: full verification ran again")

    monkeypatch.setattr(image_run, "verify_image", no_full_verification)
    launch = image.prepare(path, [])
    assert launch.root.is_dir()
    # A changed file is never taken for the warmed one.
    copy = tmp_path / "copy.fata"
    data = bytearray(path.read_bytes())
    data[-30] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="not warmed"):
        image.prepare(copy, [])
