"""One self-contained HTML page (``--format html``): text, tables and figures, with nothing fetched
from the network (the style is inline, each figure an SVG in a ``data:`` URI), to share with people
who do not use a terminal."""

from __future__ import annotations

import re
from base64 import b64encode
from html import escape

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
.lines p { margin: 0.2em 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #ddd; vertical-align: top; }
th { border-bottom: 2px solid #888; text-align: left; }
td.right, th.right { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
.wide { overflow-x: auto; }
"""


def lines(text) -> str:
    """Lines of text, one paragraph each (``text``: a string or a list of lines)."""
    rows = text.splitlines() if isinstance(text, str) else list(text)
    return '<div class="lines">' + "".join(f"<p>{escape(r)}</p>" for r in rows if r.strip()) + "</div>"


def table(headers, rows, align) -> str:
    """``rows`` of strings under ``headers``, as `alexcost.render.table.render_table` takes them."""
    def cells(tag, values):
        return "".join(f'<{tag} class="{a}">{escape(str(v))}</{tag}>' for v, a in zip(values, align))
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{cells("th", headers)}</tr></thead><tbody>{body}</tbody></table></div>'


def figure(fig, caption: str) -> str:
    """A matplotlib figure as an SVG image inside the page (a ``data:`` URI: no file, no fetch)."""
    from .plot import figure_bytes

    text = figure_bytes(fig, "svg").decode("utf-8")
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)  # names a DTD on the web; nothing reads it
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # RDF vocabularies by their addresses
    svg = b64encode(text.encode("utf-8")).decode("ascii")
    return (f'<figure><img alt="{escape(caption)}" src="data:image/svg+xml;base64,{svg}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def pre(text: str) -> str:
    """Text laid out in columns, as the terminal shows it."""
    return f'<div class="wide"><pre>{escape(text)}</pre></div>'


def heading(text: str) -> str:
    return f"<h2>{escape(text)}</h2>"


def page(title: str, parts) -> str:
    """The whole page: ``title`` and the HTML ``parts`` made by the functions above."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{escape(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n" + "\n".join(parts)
            + "\n</body>\n</html>\n")
