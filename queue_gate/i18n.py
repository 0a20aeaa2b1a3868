"""The words of the gate's pages in German and English, and choosing between them.

Easy language: short sentences, no jargon. Templates get `t` (this table for the chosen
language) and format numbers with `number` so 41203 reads 41.203 or 41,203.
"""

from __future__ import annotations

from aiohttp import web

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LANG_COOKIE = "qg_lang"

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "title": "Warteraum",
        "heading": "Sie sind in der Warteschlange",
        "place": "Ihr Platz in der Schlange",
        "ahead": "Vor Ihnen",
        "people": "Personen",
        "wait": "Geschätzte Wartezeit",
        "wait_unknown": "im Moment nicht bekannt",
        "less_than_minute": "weniger als 1 Minute",
        "about_minutes": "etwa {n} Minuten",
        "about_hours": "etwa {h} Std. {m} Min.",
        "no_refresh": "Sie müssen nichts tun. Diese Seite aktualisiert sich von selbst.",
        "keep_place": "Wenn Sie die Seite schließen, behalten Sie Ihren Platz. "
                      "Öffnen Sie einfach diese Adresse wieder (bis zu 24 Stunden).",
        "paused_heading": "Die Buchung ist gerade angehalten",
        "paused": "Niemand wird gerade eingelassen. Sie behalten Ihren Platz. "
                  "Es geht weiter, sobald wieder Termine da sind.",
        "closed_heading": "Der Warteraum ist geschlossen",
        "closed": "Im Moment werden keine neuen Plätze vergeben.",
        "prequeue_heading": "Die Buchung beginnt bald",
        "opens_at": "Die Buchung öffnet am {date} um {time} Uhr.",
        "prequeue": "Alle, die vor der Öffnung da sind, bekommen bei der Öffnung einen Platz "
                    "in zufälliger Reihenfolge. Früher kommen bringt keinen Vorteil, und Sie "
                    "müssen nicht neu laden.",
        "prequeue_count": "Im Moment warten hier",
        "returning": "Sie waren eine Weile nicht da, als Sie an der Reihe waren. "
                     "Sie sind jetzt wieder ganz vorne.",
        "limited_heading": "Zu viele Anmeldungen von diesem Anschluss",
        "limited": "Von Ihrem Internetanschluss haben sich in den letzten Minuten sehr viele "
                   "Menschen angestellt. Bitte versuchen Sie es in {minutes} Minuten noch "
                   "einmal. Pflegeeinrichtungen können uns bitten, ihren Anschluss "
                   "freizuschalten.",
        "admitted_heading": "Sie sind an der Reihe",
        "admitted": "Sie werden jetzt zur Terminbuchung weitergeleitet.",
        "continue": "Weiter zur Buchung",
        "updated": "Zuletzt aktualisiert",
        "language": "English",
        "busy_heading": "Einen Moment bitte",
        "busy": "Der Warteraum ist gerade sehr gefragt. Diese Seite versucht es "
                "in wenigen Sekunden von selbst noch einmal.",
        "error_heading": "Das hat nicht geklappt",
        "not_found": "Diese Seite gibt es nicht.",
        "back": "Zum Warteraum",
        "request_error": "Diese Anfrage können wir nicht bearbeiten. "
                         "Bitte gehen Sie zurück zum Warteraum.",
        "internal_error": "Bei uns ist ein Fehler passiert. Ihr Platz bleibt erhalten. "
                          "Bitte versuchen Sie es gleich noch einmal.",
        "session_ended": "Ihre Buchungszeit ist abgelaufen. Sie haben einen neuen Platz "
                         "in der Schlange bekommen.",
        "backend_down": "Die Terminbuchung antwortet gerade nicht. Bitte versuchen Sie es "
                        "in einer Minute noch einmal.",
    },
    "en": {
        "title": "Waiting room",
        "heading": "You are in the queue",
        "place": "Your place in line",
        "ahead": "Ahead of you",
        "people": "people",
        "wait": "Estimated wait",
        "wait_unknown": "not known at the moment",
        "less_than_minute": "less than 1 minute",
        "about_minutes": "about {n} minutes",
        "about_hours": "about {h} h {m} min",
        "no_refresh": "You do not need to do anything. This page updates by itself.",
        "keep_place": "If you close this page, you keep your place. "
                      "Just open this address again (within 24 hours).",
        "paused_heading": "Booking is paused right now",
        "paused": "Nobody is let in at the moment. You keep your place. "
                  "It continues as soon as appointments are available again.",
        "closed_heading": "The waiting room is closed",
        "closed": "No new places are given out at the moment.",
        "prequeue_heading": "Booking opens soon",
        "opens_at": "Booking opens on {date} at {time}.",
        "prequeue": "Everyone who is here before the opening gets a place in random order "
                    "when it opens. Coming earlier gives no advantage, and you do not need "
                    "to reload.",
        "prequeue_count": "Waiting here right now",
        "returning": "You were away for a while when it was your turn. "
                     "You are now at the front again.",
        "limited_heading": "Too many people from this connection",
        "limited": "Very many people have joined from your internet connection in the last "
                   "minutes. Please try again in {minutes} minutes. Care homes can ask us to "
                   "allow their connection.",
        "admitted_heading": "It is your turn",
        "admitted": "You are now being taken to the booking.",
        "continue": "Continue to booking",
        "updated": "Last updated",
        "language": "Deutsch",
        "busy_heading": "One moment please",
        "busy": "The waiting room is very busy right now. This page will try again "
                "by itself in a few seconds.",
        "error_heading": "That did not work",
        "not_found": "This page does not exist.",
        "back": "Go to the waiting room",
        "request_error": "We cannot handle this request. Please go back to the waiting room.",
        "internal_error": "Something went wrong on our side. Your place is kept. "
                          "Please try again in a moment.",
        "session_ended": "Your booking time has run out. You have been given a new place "
                         "in line.",
        "backend_down": "The booking system is not answering right now. Please try again "
                        "in a minute.",
    },
}


def choose_language(request: web.Request) -> str:
    """`?lang=` wins, then the language cookie, then the browser's Accept-Language."""
    for candidate in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def format_number(value: int, language: str) -> str:
    text = f"{value:,}"
    return text.replace(",", ".") if language == "de" else text


def format_wait(seconds: float | None, language: str) -> str:
    texts = TEXTS[language]
    if seconds is None:
        return texts["wait_unknown"]
    if seconds < 60:
        return texts["less_than_minute"]
    minutes = round(seconds / 60)
    if minutes < 90:
        return texts["about_minutes"].format(n=minutes)
    return texts["about_hours"].format(h=minutes // 60, m=minutes % 60)
