"""Who runs the site, shared by the waiting room and the booking pages.

Both services read the same four variables (`SITE_SERVICE_NAME`, `SITE_OPERATOR`,
`SITE_IMPRESSUM_URL`, `SITE_PRIVACY_URL`) into one `SiteSettings`, which their pages get as
the template global `site`: the shared layout (`templates/site/layout.html`) names the
service and its operator in the header and links the Impressum and the Datenschutz page in
the footer. The defaults are a demo's and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from vaccine_queue.config import Env, SettingsError
from vaccine_queue.pages import Handler, Pages

DEMO_SERVICE_NAME = "Impfterminbuchung (Demo)"
DEMO_OPERATOR = "Demo-Betreiber (kein echter Dienst)"
# Placeholder pages both servers answer themselves while these are the addresses.
DEMO_IMPRESSUM_URL = "/site/impressum"
DEMO_PRIVACY_URL = "/site/datenschutz"


@dataclass(frozen=True, slots=True)
class SiteSettings:
    service_name: str = DEMO_SERVICE_NAME  # SITE_SERVICE_NAME
    operator: str = DEMO_OPERATOR  # SITE_OPERATOR
    impressum_url: str = DEMO_IMPRESSUM_URL  # SITE_IMPRESSUM_URL
    privacy_url: str = DEMO_PRIVACY_URL  # SITE_PRIVACY_URL

    def __post_init__(self) -> None:
        for variable, url in (("SITE_IMPRESSUM_URL", self.impressum_url),
                              ("SITE_PRIVACY_URL", self.privacy_url)):
            if not url.startswith(("https://", "http://", "/")) or url.startswith("//"):
                raise SettingsError(
                    f"{variable} must be an http(s) address or a path starting with /, "
                    f"not {url!r}")

    @property
    def is_demo(self) -> bool:
        """Still the demo's operator: the pages say that no real service runs here."""
        return self.operator == DEMO_OPERATOR

    @classmethod
    def from_env(cls, env: Env) -> SiteSettings:
        d = cls()
        return cls(
            service_name=env.text("SITE_SERVICE_NAME", d.service_name),
            operator=env.text("SITE_OPERATOR", d.operator),
            impressum_url=env.text("SITE_IMPRESSUM_URL", d.impressum_url),
            privacy_url=env.text("SITE_PRIVACY_URL", d.privacy_url),
        )


# -- what both servers serve for the shared layout ---------------------------------------------
def stylesheet_handler(pages: Pages) -> Handler:
    """GET the site's one stylesheet (`site/site.css`, an operator's copy first)."""
    body = pages.asset("site/site.css")

    async def stylesheet(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/css", charset="utf-8",
                            headers={"Cache-Control": "public, max-age=3600"})

    return stylesheet


def demo_legal_routes(site: SiteSettings) -> dict[str, str]:
    """The placeholder Impressum and Datenschutz pages each server answers itself (no pass,
    no proxy) while their address is still the demo's: path -> catalogue key of the page."""
    routes = {}
    if site.impressum_url == DEMO_IMPRESSUM_URL:
        routes[DEMO_IMPRESSUM_URL] = "legal.impressum_demo"
    if site.privacy_url == DEMO_PRIVACY_URL:
        routes[DEMO_PRIVACY_URL] = "legal.privacy_demo"
    return routes


def add_demo_legal_pages(router: web.UrlDispatcher, pages: Pages, site: SiteSettings) -> None:
    """Register `demo_legal_routes`; a deployment that set real addresses gets none."""
    for path, text in demo_legal_routes(site).items():
        heading = "site.impressum" if path == DEMO_IMPRESSUM_URL else "site.privacy"

        async def legal(request: web.Request, heading: str = heading,
                        text: str = text) -> web.Response:
            return pages.render(request, "site/legal.html", {"heading": heading, "text": text})

        router.add_get(path, legal)
