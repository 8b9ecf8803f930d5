"""Render Fata's README and docs into the default site, ``data/site/``.

    .venv/bin/python appliances/www/render_site.py

The image builder has no hook that runs code at build time, so the rendered pages are
committed and this script re-makes them: run it after editing README.md, docs/*.md or an
appliance's README.md.  The output depends only on those files (no dates, sorted order),
so running it twice changes nothing.

Pages: ``README.md`` -> ``index.html``, ``docs/NAME.md`` -> ``docs/NAME.html``,
``appliances/NAME/README.md`` -> ``appliances/NAME/index.html``; links between them are
rewritten to the rendered pages; ``style.css`` and ``404.html`` complete the site.
"""

from __future__ import annotations

import html
import posixpath
import sys
from pathlib import Path

from markdown_it import MarkdownIt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "data" / "site"

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


def sources() -> dict[str, Path]:
    """Output path (relative to the site) -> Markdown file, in a fixed order."""
    out = {"index.html": ROOT / "README.md"}
    for doc in sorted((ROOT / "docs").glob("*.md")):
        out[f"docs/{doc.stem}.html"] = doc
    for readme in sorted((ROOT / "appliances").glob("*/README.md")):
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


def render(out_dir: Path = OUT) -> list[Path]:
    """Write the site into ``out_dir``; return the files written."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    pages = sources()
    written = []
    files = {out: render_page(md, out, src, pages) for out, src in pages.items()}
    files["style.css"] = STYLE
    files["404.html"] = PAGE.format(
        title="Not found", root="/", nav='<a href="/">Fata</a>',
        body="<h1>Not found</h1>\n<p>There is no page at this address.</p>\n")
    for rel, content in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in render(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
