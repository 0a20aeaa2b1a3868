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
from vaccine_queue.pages import Pages

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
# The placeholder pages, path -> (heading, text): answered while the path is still the
# setting's value (a demo), 404 once the operator gave their own addresses.
DEMO_LEGAL_PAGES: dict[str, tuple[str, str]] = {
    DEMO_IMPRESSUM_URL: ("site.impressum", "legal.impressum_demo"),
    DEMO_PRIVACY_URL: ("site.privacy", "legal.privacy_demo"),
}


def stylesheet_response(pages: Pages) -> web.Response:
    """The site's one stylesheet (`site/site.css`, an operator's copy first)."""
    return web.Response(text=pages.asset("site/site.css"), content_type="text/css",
                        charset="utf-8", headers={"Cache-Control": "public, max-age=3600"})


def demo_legal_page(request: web.Request, pages: Pages, site: SiteSettings) -> web.Response:
    """A placeholder Impressum or Datenschutz page (DEMO_LEGAL_PAGES) each server answers
    itself, no pass and no proxy; 404 where the deployment set its own address."""
    heading, text = DEMO_LEGAL_PAGES[request.path]
    if request.path not in (site.impressum_url, site.privacy_url):
        raise web.HTTPNotFound()
    return pages.render(request, "site/legal.html", {"heading": heading, "text": text})
