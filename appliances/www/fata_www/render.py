"""The default site, made at build time: Fata's README and docs rendered to HTML.

``fata build`` calls :func:`generate` (``kv_ro("data/site", generate=...)`` in
``config.py``) and bakes what it writes; nothing rendered is committed, so the pages are
never stale.  To look at them without building:

    .venv/bin/python -m fata_www.render /tmp/site

Pages: ``README.md`` -> ``index.html``, ``docs/NAME.md`` -> ``docs/NAME.html``,
``appliances/NAME/README.md`` -> ``appliances/NAME/index.html``, from the repository this
appliance sits in (``appliances/<name>/`` of it); an appliance elsewhere (a fork made with
``fata new`` outside the repository) renders its own README.md as ``index.html``.  Links
between the pages are rewritten to the rendered pages; ``style.css`` and ``404.html``
complete the site, and every compressible page gets ``.br`` and ``.gz`` siblings
(``fata_www.responses`` serves them as its variants).  The output depends only on the
Markdown (no dates, sorted order), so two builds give the same bytes.

This module runs only at build time: the appliance never imports it, so neither it nor
markdown-it-py is in the image.
"""

from __future__ import annotations

import html
import posixpath
import sys
from pathlib import Path

from markdown_it import MarkdownIt

from fata_www.responses import CODINGS, COMPRESSIBLE, GZIP_MIN, SUFFIXES, compress
from fata_www.site import BUILD_EPOCH_KEY, content_type

APPLIANCE = Path(__file__).resolve().parents[1]

STYLE = """\
:root { color-scheme: light dark; --fg: #1d1f21; --bg: #fdfdfc; --muted: #5c6166;
        --accent: #0b62a4; --code: #f1f2f0; --rule: #dcdedb; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e4e4e1; --bg: #17191b; --muted: #a2a7ab; --accent: #6cb4f0;
          --code: #23262a; --rule: #33373b; } }
html { background: var(--bg); color: var(--fg); }
body { font: 17px/1.6 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 46rem;
       margin: 0 auto; padding: 1rem 1.25rem 4rem; }
nav { border-bottom: 1px solid var(--rule); padding: .5rem 0; margin-bottom: 1.5rem; }
nav a { margin-right: 1rem; }
a { color: var(--accent); }
h1, h2, h3 { line-height: 1.25; }
code, pre { font: 14px/1.45 ui-monospace, "SFMono-Regular", Menlo, monospace;
            background: var(--code); border-radius: 4px; }
code { padding: .1em .3em; }
pre { padding: .8rem 1rem; overflow-x: auto; }
pre code { padding: 0; background: none; }
table { border-collapse: collapse; font-size: 15px; }
th, td { border: 1px solid var(--rule); padding: .3rem .6rem; text-align: left; }
footer { color: var(--muted); font-size: 14px; margin-top: 3rem; }
"""

PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{root}style.css">
</head>
<body>
<nav>{nav}</nav>
<main>
{body}</main>
<footer>Served by Fata's www appliance.</footer>
</body>
</html>
"""


def repository(appliance: Path = APPLIANCE) -> Path | None:
    """The Fata repository the appliance is part of (``appliances/<name>/`` of it)."""
    root = appliance.parents[1]
    if appliance.parent.name == "appliances" and (root / "README.md").is_file():
        return root
    return None


def sources(appliance: Path = APPLIANCE) -> dict[str, Path]:
    """Output path (relative to the site) -> Markdown file, in a fixed order."""
    root = repository(appliance)
    if root is None:
        readme = appliance / "README.md"
        return {"index.html": readme} if readme.is_file() else {}
    out = {"index.html": root / "README.md"}
    for doc in sorted((root / "docs").glob("*.md")):
        out[f"docs/{doc.stem}.html"] = doc
    for readme in sorted((root / "appliances").glob("*/README.md")):
        out[f"appliances/{readme.parent.name}/index.html"] = readme
    return out


def title_of(text: str, default: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return default


def render_page(md: MarkdownIt, page: str, source: Path, pages: dict[str, Path]) -> str:
    """One page: its Markdown as HTML, links to other rendered sources rewritten."""
    by_source = {src.resolve(): out for out, src in pages.items()}
    text = source.read_text(encoding="utf-8")
    tokens = md.parse(text)
    page_dir = posixpath.dirname(page)
    for token in tokens:
        for child in token.children or ():
            if child.type != "link_open":
                continue
            href = str(child.attrs.get("href", ""))
            if "://" in href or href.startswith(("#", "mailto:")):
                continue
            target, _, fragment = href.partition("#")
            resolved = (source.parent / target).resolve()
            if resolved.is_dir():
                resolved = resolved / "README.md"
            rendered = by_source.get(resolved)
            if rendered is not None:
                rel = posixpath.relpath(rendered, page_dir or ".")
                child.attrs["href"] = rel + (f"#{fragment}" if fragment else "")
    body = md.renderer.render(tokens, md.options, {})
    root = "../" * page.count("/")
    nav = " ".join(f'<a href="{root}{html.escape(out)}">{html.escape(label)}</a>'
                   for out, label in nav_items(pages))
    return PAGE.format(title=html.escape(title_of(text, "Fata")), root=root, nav=nav, body=body)


def nav_items(pages: dict[str, Path]) -> list[tuple[str, str]]:
    items = [("index.html", "Fata")]
    for out in pages:
        if out.startswith("docs/"):
            items.append((out, posixpath.basename(out)[:-5].replace("-", " ")))
        elif out.startswith("appliances/"):
            items.append((out, out.split("/")[1]))
    return items


def render(out_dir: Path, appliance: Path = APPLIANCE) -> list[Path]:
    """Write the site into ``out_dir``; return the files written (siblings included)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    pages = sources(appliance)
    written = []
    files = {out: render_page(md, out, src, pages) for out, src in pages.items()}
    files["style.css"] = STYLE
    files["404.html"] = PAGE.format(
        title="Not found", root="/", nav='<a href="/">Fata</a>',
        body="<h1>Not found</h1>\n<p>There is no page at this address.</p>\n")
    if "index.html" not in files:
        files["index.html"] = PAGE.format(title="Fata", root="", nav="", body="<h1>Fata</h1>\n")
    for rel, content in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8")
        path.write_bytes(data)
        written.append(path)
        written += precompress(path, data)
    return written


def precompress(path: Path, data: bytes) -> list[Path]:
    """``path.br`` and ``path.gz`` for a compressible file, each if a tenth smaller."""
    if len(data) < GZIP_MIN or not content_type(path.name).startswith(COMPRESSIBLE):
        return []
    out = []
    for coding in CODINGS:
        packed = compress(coding, data)
        if len(packed) <= len(data) * 0.9:
            sibling = path.with_name(path.name + SUFFIXES[coding])
            sibling.write_bytes(packed)
            out.append(sibling)
    return out


def generate(out: Path, epoch: int) -> None:
    """The build hook: the site into ``out``, and the build's epoch in ``.build-epoch``
    (:data:`~fata_www.site.BUILD_EPOCH_KEY`), which the appliance gives as the baked
    files' ``Last-Modified`` (the pages themselves carry no date)."""
    render(out)
    (out / BUILD_EPOCH_KEY).write_text(f"{int(epoch)}\n")


if __name__ == "__main__":
    for written in render(Path(sys.argv[1])):
        print(written)
