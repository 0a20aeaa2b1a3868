"""One site: the waiting page says what the line is for and who runs it, links the
Impressum and the Datenschutz page, and loads the site's stylesheet from the gate itself."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest

from queue_gate.settings import Settings
from tests.queue_gate.conftest import GateFactory
from vaccine_queue.site import DEMO_IMPRESSUM_URL, DEMO_PRIVACY_URL, SiteSettings

OWN_SITE = SiteSettings(service_name="Impfportal Musterland", operator="Land Musterland",
                        impressum_url="https://example.org/impressum",
                        privacy_url="https://example.org/datenschutz")


@pytest.mark.parametrize(("lang", "about", "run_by"), [
    ("de", "Buchung von Impfterminen bei „Impfportal Musterland“, betrieben von Land Musterland",
     "Ein Angebot von Land Musterland"),
    ("en", "a vaccination appointment with “Impfportal Musterland”, run by Land Musterland",
     "Run by Land Musterland"),
])
async def test_waiting_page_says_what_the_line_is_for_and_who_runs_it(
        make_gate: GateFactory, lang: str, about: str, run_by: str) -> None:
    gate = await make_gate(site=OWN_SITE)
    response = await gate.client.get(f"/queue/wait?lang={lang}", headers={"Accept": "text/html"})
    assert response.status == 200
    page = await response.text()
    assert about in page and run_by in page
    assert 'href="https://example.org/impressum"' in page
    assert 'href="https://example.org/datenschutz"' in page
    assert '<link rel="stylesheet" href="/queue/static/site.css">' in page
    # The operator's own addresses: the gate answers no placeholder (it proxies the path).
    for path in (DEMO_IMPRESSUM_URL, DEMO_PRIVACY_URL):
        assert path not in page


async def test_the_gate_serves_the_sites_stylesheet_and_demo_legal_pages(
        make_gate: GateFactory) -> None:
    gate = await make_gate()
    response = await gate.client.get("/queue/static/site.css")
    assert response.status == 200 and response.content_type == "text/css"
    shared = importlib.resources.files("vaccine_queue.templates").joinpath("site", "site.css")
    assert await response.text() == shared.read_text(encoding="utf-8")
    for path in (DEMO_IMPRESSUM_URL, DEMO_PRIVACY_URL):
        response = await gate.client.get(path, headers={"Accept-Language": "de"})
        assert response.status == 200  # answered by the gate: no pass, no backend
        page = await response.text()
        assert "Dies ist eine Demo" in page and 'href="/queue/static/site.css"' in page


def test_the_gate_reads_the_same_site_settings() -> None:
    settings = Settings.from_env({"SITE_OPERATOR": "Land X", "QUEUE_GATE_DEMO": "1"})
    assert settings.site.operator == "Land X"
    assert settings.site.service_name == SiteSettings().service_name


async def test_an_operators_folder_may_replace_the_shared_layout_and_stylesheet(
        make_gate: GateFactory, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "site.css").write_text("body { color: #222; }\n", encoding="utf-8")
    layout = importlib.resources.files("vaccine_queue.templates").joinpath("site", "layout.html")
    own = layout.read_text(encoding="utf-8").replace(
        '<main id="main">', '<p id="own">Eigenes Layout</p>\n<main id="main">')
    (tmp_path / "site" / "layout.html").write_text(own, encoding="utf-8")
    gate = await make_gate(template_dir=tmp_path)
    response = await gate.client.get("/queue/static/site.css")
    assert await response.text() == "body { color: #222; }\n"
    response = await gate.client.get("/queue/wait", headers={"Accept": "text/html"})
    page = await response.text()
    assert '<p id="own">Eigenes Layout</p>' in page and 'id="position"' in page
