"""The images the project publishes: ``images/recipes.json``, built by ``make images``.

``python -m fata.image.recipes [--out DIR] [--sign KEY]`` builds every recipe (an
appliance of ``appliances/``, a target and its configure-time keys) into ``images/dist/``
and writes ``images/dist/index.json`` for ``fata pull``.  Without ``--sign`` the images are
signed with the development key, which is fine for trying things and wrong for a release.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fata.config import ConfigError
from fata.image.builder import build
from fata.image.errors import ImageError
from fata.image.paths import project_root
from fata.image.publishing import publish

RECIPES_FORMAT = "fata-recipes/1"


def load_recipes(path: Path) -> list[dict[str, Any]]:
    """The recipes of a recipes file, checked."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read recipes ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != RECIPES_FORMAT:
        raise ImageError(f"{path}: not a {RECIPES_FORMAT} file")
    recipes = doc.get("images")
    if not isinstance(recipes, list):
        raise ImageError(f"{path}: no list of images")
    for recipe in recipes:
        if not isinstance(recipe, dict) or not isinstance(recipe.get("appliance"), str):
            raise ImageError(f"{path}: a recipe without an appliance: {recipe!r:.80}")
        keys = recipe.get("keys", {})
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise ImageError(f"{path}: recipe {recipe['appliance']}: keys must be strings")
    return recipes


def build_all(root: Path, out: Path, sign: Path | None, log: Any = print) -> Path:
    """Build every recipe of ``root/images/recipes.json`` into ``out``; write the index."""
    images = []
    for recipe in load_recipes(root / "images" / "recipes.json"):
        appliance_dir = root / "appliances" / recipe["appliance"]
        images.append(build(appliance_dir, dict(recipe.get("keys", {})), out, sign, log=log,
                            target=recipe.get("target", "unix")))
    trust = [sign.with_name(sign.name + ".pub")] if sign is not None else []
    return publish(images, out, trust=[t for t in trust if t.is_file()])


def main(argv: list[str] | None = None) -> int:
    """``python -m fata.image.recipes``."""
    root = project_root()
    parser = argparse.ArgumentParser(prog="python -m fata.image.recipes", description=__doc__)
    parser.add_argument("--root", type=Path, default=root,
                        help="the repository (default: the one this fata comes from)")
    parser.add_argument("--out", type=Path, help="output directory (default ROOT/images/dist)")
    parser.add_argument("--sign", type=Path, metavar="KEY", help="ed25519 private key")
    ns = parser.parse_args(argv)
    if ns.root is None:
        print("fata: not in a Fata checkout; pass --root", file=sys.stderr)
        return 2
    out = ns.out or ns.root / "images" / "dist"
    try:
        index = build_all(ns.root, out, ns.sign)
    except (ImageError, ConfigError, OSError) as exc:
        print(f"fata: {exc}", file=sys.stderr)
        return 1
    print(index)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
