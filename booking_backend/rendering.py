"""Jinja2 pages: operator overrides first (BOOKING_TEMPLATE_DIR), then the packaged theme."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from aiohttp import web

from booking_backend import keys
from booking_backend.i18n import WEEKDAYS, translator
from booking_backend.settings import Settings


def environment(settings: Settings) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if settings.template_dir:
        loaders.append(jinja2.FileSystemLoader(settings.template_dir))
    packaged = importlib.resources.files("vaccine_queue.templates") / "booking"
    loaders.append(jinja2.FileSystemLoader(str(packaged)))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def make_renderer(settings: Settings) -> Callable[..., web.Response]:
    env = environment(settings)
    zone = zoneinfo.ZoneInfo(settings.timezone)

    def render(request: web.Request, name: str, context: Mapping[str, Any],
               status: int = 200) -> web.Response:
        lang = request.get(keys.lang_key) or "de"
        t = translator(lang)

        def when(epoch: float) -> str:
            moment = dt.datetime.fromtimestamp(epoch, zone)
            day = WEEKDAYS[lang][moment.weekday()]
            if lang == "en":
                return f"{day}, {moment:%d %B %Y}, {moment:%H:%M}"
            return f"{day}, {moment:%d.%m.%Y}, {moment:%H:%M} Uhr"

        def clock_time(epoch: float) -> str:
            return f"{dt.datetime.fromtimestamp(epoch, zone):%H:%M}"

        page = env.get_template(name).render(
            t=t, lang=lang, other_lang="en" if lang == "de" else "de", when=when,
            clock_time=clock_time, path=request.path, settings=settings, **context,
        )
        response = web.Response(text=page, content_type="text/html", status=status)
        response.headers["Content-Language"] = lang
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        )
        return response

    return render
