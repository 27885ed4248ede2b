"""Markdown reports as self-contained HTML pages, by markdown-it-py (CommonMark and its tables).

Raw HTML in the Markdown is not passed through (``html=False``: it is shown as text), links to
javascript: and other unsafe schemes are not made, and strings that come from the user (file
names, problem names) go through `md_escape` first, so they show as typed.
"""

from __future__ import annotations

import html
import re

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto;padding:0 1em}"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
    "img{max-width:100%}"
)


def md_escape(text: object) -> str:
    """``text`` as Markdown that renders to exactly that text (CommonMark backslash escapes)."""
    return _PUNCTUATION.sub(r"\\\1", str(text)).replace("\n", " ")


def html_page(md: str, title: str = "topovae report") -> str:
    """A standalone HTML page of the Markdown ``md`` (no external resources but its images)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    )
