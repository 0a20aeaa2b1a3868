"""`BookingError`: what a person or client must be told, with a stable code."""

from __future__ import annotations

from collections.abc import Mapping


class BookingError(Exception):
    """Something a person (or client) can fix or must be told; `code` is stable and names
    the text `err.<code>` in i18n.py."""

    def __init__(
        self, code: str, status: int = 400, *, field: str = "",
        params: Mapping[str, object] | None = None, extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.field = field
        self.params: dict[str, object] = dict(params or {})
        self.extra: dict[str, object] = dict(extra or {})
