"""One site: the booking pages name the service and its operator (SITE_* settings), link the
Impressum and the Datenschutz page, share the gate's stylesheet, and say in short what is
stored, why and for how long before asking for personal data."""

from __future__ import annotations

import importlib.resources

import pytest

from booking_backend.settings import Settings
from tests.booking_backend.conftest import HOME_POSTCODE, OLD, Env, MakeEnv
from tests.booking_backend.test_pages import Browser
from vaccine_queue.config import SettingsError
from vaccine_queue.site import DEMO_IMPRESSUM_URL, DEMO_PRIVACY_URL, SiteSettings

OWN_SITE = SiteSettings(service_name="Impfportal Musterland", operator="Land Musterland",
                        impressum_url="https://example.org/impressum",
                        privacy_url="https://example.org/datenschutz")


@pytest.mark.parametrize(("lang", "run_by", "privacy"), [
    ("de", "Ein Angebot von Land Musterland", ">Datenschutz</a>"),
    ("en", "Run by Land Musterland", ">Privacy (Datenschutz)</a>"),
])
async def test_booking_pages_name_the_service_operator_and_legal_pages(
        make_env: MakeEnv, lang: str, run_by: str, privacy: str) -> None:
    env = await make_env(site=OWN_SITE)
    pairs = await env.add_pairs(1)
    browser = Browser(env, lang)
    pages = []
    await browser.get("/")
    pages.append(browser.page)
    await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    pages.append(browser.page)
    await browser.post("/hold", first_slot=pairs[0][0].id, second_slot=pairs[0][1].id)
    pages.append(browser.page)
    for page in pages:
        assert "Impfportal Musterland" in page and run_by in page
        assert 'href="https://example.org/impressum"' in page
        assert 'href="https://example.org/datenschutz"' in page and privacy in page
        assert '<link rel="stylesheet" href="/static/booking.css">' in page
    # The operator's own addresses: no placeholder pages of the demo.
    for path in (DEMO_IMPRESSUM_URL, DEMO_PRIVACY_URL):
        async with env.client.get(path, headers=browser.headers) as resp:
            assert resp.status == 404


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_privacy_note_comes_before_name_and_phone(make_env: MakeEnv, lang: str) -> None:
    env = await make_env(retention_days=45)
    pairs = await env.add_pairs(1)
    browser = Browser(env, lang)
    await browser.get("/")
    start = browser.page
    assert start.index('class="privacy"') < start.index('name="birth_date"')
    assert ("45 Tage nach dem zweiten Termin" if lang == "de"
            else "45 days after your second appointment") in start
    await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    await browser.post("/hold", first_slot=pairs[0][0].id, second_slot=pairs[0][1].id)
    details = browser.page
    note = details.index('class="privacy"')
    assert note < details.index('name="name"') < details.index('name="contact"')
    assert ("Name, Geburtsdatum und Kontakt werden 45 Tage" if lang == "de"
            else "Your name, birth date and contact are deleted 45 days") in details
    assert f'href="{DEMO_PRIVACY_URL}"' in details[note:details.index('name="name"')]


async def test_demo_legal_pages_need_no_pass_and_say_they_are_a_demo(env: Env) -> None:
    for path, lang, words in ((DEMO_IMPRESSUM_URL, "de", "Dies ist eine Demo"),
                              (DEMO_PRIVACY_URL, "en", "SITE_PRIVACY_URL")):
        async with env.client.get(path, headers={"Accept-Language": lang}) as resp:
            assert resp.status == 200
            page = await resp.text()
        assert words in page and "Demo-Betreiber" in page


async def test_the_stylesheet_is_the_sites_one(env: Env) -> None:
    async with env.client.get("/static/booking.css") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/css"
        served = await resp.text()
    shared = importlib.resources.files("vaccine_queue.templates").joinpath("site", "site.css")
    assert served == shared.read_text(encoding="utf-8")
    assert "--brand:" in served


def test_site_settings_from_the_environment() -> None:
    settings = Settings.from_env({"SITE_SERVICE_NAME": "Impfportal", "SITE_OPERATOR": "Land X",
                                  "SITE_IMPRESSUM_URL": "https://x.example/i",
                                  "SITE_PRIVACY_URL": "/privacy"})
    assert settings.site == SiteSettings("Impfportal", "Land X", "https://x.example/i",
                                         "/privacy")
    demo = Settings.from_env({}).site
    assert "Demo" in demo.service_name and "Demo" in demo.operator and demo.is_demo
    with pytest.raises(SettingsError, match="SITE_PRIVACY_URL"):
        Settings.from_env({"SITE_PRIVACY_URL": "javascript:alert(1)"})


def test_a_deployment_still_named_as_the_demo_is_warned() -> None:
    production = {"QUEUE_GATE_SECRETS": "s", "BOOKING_ADMIN_TOKEN": "a",
                  "BOOKING_IDENTITY_KEY": "i", "BOOKING_SENDER": "webhook",
                  "BOOKING_WEBHOOK_URL": "http://sms/send"}
    warnings = Settings.from_env(production).check_startable()
    assert any("SITE_OPERATOR" in warning for warning in warnings)
    assert Settings.from_env({**production, "SITE_OPERATOR": "Land X"}).check_startable() == []
