"""Rendering the pages citizens see, from `templates/gate/` or an operator's own copy."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from queue_gate.i18n import LANG_COOKIE, TEXTS, choose_language, format_number, format_wait


class Pages:
    def __init__(self, override_dir: Path | None = None) -> None:
        default_dir = Path(str(importlib.resources.files("vaccine_queue.templates") / "gate"))
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            # An operator's customised pages win; anything they did not copy falls back.
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.FileSystemLoader(str(default_dir)))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(default=True),
            undefined=jinja2.StrictUndefined,
        )

    def render(
        self,
        request: web.Request,
        name: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        language = choose_language(request)
        template = self.env.get_template(name)
        body = template.render(
            lang=language,
            t=TEXTS[language],
            number=lambda value: format_number(value, language),
            wait_text=lambda seconds: format_wait(seconds, language),
            other_language="en" if language == "de" else "de",
            **context,
        )
        response = web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8",
            headers=headers,
        )
        response.headers["Cache-Control"] = "no-store"
        if request.query.get("lang") == language:
            response.set_cookie(LANG_COOKIE, language, max_age=365 * 86400, samesite="Lax",
                                httponly=True, path="/")
        return response
