"""What a page must not hold: a text of the other language's catalogue.

A catalogue text is looked for in its distinctive pieces: split at its `{placeholders}`,
only pieces of 16 characters or more that appear nowhere in the page language's own
catalogue (a brand or an example address may be the same in both)."""

from __future__ import annotations

import functools
import html
import re

from vaccine_queue.i18n import LANGUAGES, catalogue

MIN_PIECE = 16


@functools.cache
def foreign_pieces(lang: str) -> tuple[str, ...]:
    own = "\n".join(catalogue(lang).values())
    pieces: set[str] = set()
    for other in LANGUAGES:
        if other == lang:
            continue
        for text in catalogue(other).values():
            for piece in re.split(r"\{[a-z_]+\}", text):
                piece = piece.strip()
                if len(piece) >= MIN_PIECE and piece not in own:
                    pieces.add(piece)
    return tuple(sorted(pieces))


def foreign_texts(page: str, lang: str) -> list[str]:
    """The other language's catalogue pieces found in `page` (HTML or JSON text)."""
    text = html.unescape(page)
    return [piece for piece in foreign_pieces(lang) if piece in text]
