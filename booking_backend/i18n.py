"""German and English texts in easy language. Pages call `t(key, **params)`.

Language: `?lang=de|en` (remembered in a cookie), else the cookie, else Accept-Language,
else German.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

LANGS = ("de", "en")
LANG_COOKIE = "bk_lang"

TEXTS: dict[str, tuple[str, str]] = {
    # layout
    "site.title": ("Impftermin buchen", "Book a vaccination appointment"),
    "site.lang_switch": ("English", "Deutsch"),
    "site.skip": ("Zum Inhalt", "Skip to content"),
    "site.manage": ("Termin ansehen oder absagen", "See or cancel an appointment"),
    "site.start": ("Zur Startseite", "Back to the start"),
    "site.help": ("Hilfe am Telefon: 116 117", "Help by phone: 116 117"),
    # start
    "start.heading": ("Impftermin buchen", "Book a vaccination appointment"),
    "start.intro": (
        "Sie buchen zwei Termine: die erste und die zweite Impfung, im selben Impfzentrum.",
        "You book two appointments: the first and the second vaccination, at the same centre.",
    ),
    "start.groups_open": ("Jetzt können buchen: Menschen ab {ages} Jahren.",
                          "Who can book now: people aged {ages} and over."),
    "start.no_group_open": ("Im Moment kann niemand buchen. Es gibt noch keinen Impfstoff.",
                            "Nobody can book right now. There is no vaccine yet."),
    "start.birth_date": ("Ihr Geburtsdatum", "Your date of birth"),
    "start.birth_hint": ("So schreiben: Tag.Monat.Jahr, zum Beispiel 24.12.1938",
                         "Write it like this: day.month.year, for example 24.12.1938"),
    "start.postcode": ("Ihre Postleitzahl", "Your postcode"),
    "start.postcode_hint": ("Fünf Ziffern, zum Beispiel 38100", "Five digits, for example 38100"),
    "start.invitation": ("Code aus Ihrem Einladungsbrief", "Code from your invitation letter"),
    "start.invitation_hint": ("Zum Beispiel ABCD-EFGH-JKLM", "For example ABCD-EFGH-JKLM"),
    "start.submit": ("Weiter", "Continue"),
    "start.for_someone": (
        "Sie buchen für einen anderen Menschen? Geben Sie dessen Daten ein.",
        "Booking for someone else? Enter their details.",
    ),
    # not eligible
    "noteligible.heading": ("Sie können noch nicht buchen", "You cannot book yet"),
    "noteligible.age": ("Sie sind {age} Jahre alt.", "You are {age} years old."),
    "noteligible.open": ("Im Moment können Menschen ab {ages} Jahren buchen.",
                         "Right now, people aged {ages} and over can book."),
    "noteligible.none_open": ("Im Moment kann niemand buchen.", "Nobody can book right now."),
    "noteligible.own_date": ("Ihre Gruppe ({group}) kann ab dem {date} buchen.",
                             "Your group ({group}) can book from {date}."),
    "noteligible.own_later": (
        "Ihre Gruppe ({group}) kommt später dran. Wir sagen es in der Zeitung und im Radio.",
        "Your group ({group}) comes later. We will announce it in the papers and on the radio.",
    ),
    "noteligible.invitation_needed": (
        "Sie brauchen den Code aus Ihrem Einladungsbrief. Die Briefe kommen nach Alter.",
        "You need the code from your invitation letter. Letters are sent by age group.",
    ),
    "noteligible.invitation_age": (
        "Dieser Einladungscode gilt für Menschen ab {min_age} Jahren.",
        "This invitation code is for people aged {min_age} and over.",
    ),
    "noteligible.back": ("Daten ändern", "Change the details"),
    # appointments
    "appts.heading": ("Freie Termine", "Free appointments"),
    "appts.district": ("Ihr Kreis: {district}", "Your district: {district}"),
    "appts.home_only": (
        "Sie können nur in Ihrem eigenen Kreis buchen.",
        "You can only book in your own district.",
    ),
    "appts.first": ("1. Impfung", "1st dose"),
    "appts.second": ("2. Impfung", "2nd dose"),
    "appts.choose": ("Diese Termine nehmen", "Take these appointments"),
    "appts.home": ("in Ihrem Kreis", "in your district"),
    "appts.other": ("anderer Kreis", "another district"),
    "appts.none": ("Im Moment sind keine Termine frei.",
        "There are no free appointments right now."),
    "appts.none_centre": ("Hier ist gerade nichts frei.", "Nothing free here right now."),
    "appts.refresh": ("Neu suchen", "Search again"),
    "appts.hold_note": (
        "Wenn Sie Termine wählen, halten wir sie {minutes} Minuten für Sie frei.",
        "When you choose appointments, we keep them for you for {minutes} minutes.",
    ),
    # waiting list
    "wl.heading": ("Auf die Warteliste", "Join the waiting list"),
    "wl.intro": (
        "Wenn Termine frei werden, bekommen Menschen auf der Warteliste sie automatisch. "
        "Sie bekommen dann eine Nachricht mit Ihrem Buchungscode.",
        "When appointments become free, people on the waiting list get them automatically. "
        "You will then get a message with your booking code.",
    ),
    "wl.where": ("Wo möchten Sie geimpft werden?", "Where would you like to be vaccinated?"),
    "wl.any_in_district": ("In einem Impfzentrum in meinem Kreis",
                           "At any centre in my district"),
    "wl.submit": ("Auf die Warteliste setzen", "Put me on the waiting list"),
    "wl.joined_heading": ("Sie stehen auf der Warteliste", "You are on the waiting list"),
    "wl.position": ("Ihr Platz: {position}", "Your place: {position}"),
    "wl.already": ("Sie stehen schon auf der Warteliste.", "You are already on the waiting list."),
    "wl.next": (
        "Sie müssen nichts tun. Wir schicken Ihnen eine Nachricht an {masked}.",
        "You do not need to do anything. We will send a message to {masked}.",
    ),
    # details
    "details.heading": ("Ihre Termine sind reserviert", "Your appointments are reserved"),
    "details.until": ("Reserviert bis {time} Uhr.", "Reserved until {time}."),
    "details.countdown": ("Noch {minutes} Minuten.", "{minutes} minutes left."),
    "details.name": ("Vorname und Nachname", "First and last name"),
    "details.contact": ("Handynummer oder E-Mail-Adresse", "Mobile number or e-mail address"),
    "details.contact_hint": (
        "Dorthin schicken wir einen Code. Zum Beispiel 0151 2345678 oder name@beispiel.de",
        "We send a code there. For example 0151 2345678 or name@example.org",
    ),
    "details.submit": ("Code schicken", "Send me a code"),
    "details.release": ("Andere Termine wählen", "Choose other appointments"),
    "details.expired": (
        "Die Reservierung ist abgelaufen. Bitte wählen Sie die Termine noch einmal.",
        "The reservation has run out. Please choose the appointments again.",
    ),
    # verify
    "verify.heading": ("Code eingeben", "Enter the code"),
    "verify.sent": ("Wir schicken einen Code an {masked}.", "We are sending a code to {masked}."),
    "verify.on_its_way": (
        "Der Code ist unterwegs. Das kann ein paar Minuten dauern. Der Code gilt {minutes} "
        "Minuten ab dem Moment, in dem er bei Ihnen ankommt.",
        "The code is on its way. This can take a few minutes. The code is valid for {minutes} "
        "minutes from the moment it reaches you.",
    ),
    "verify.delivered": ("Der Code ist angekommen. Er gilt {minutes} Minuten.",
                         "The code has arrived. It is valid for {minutes} minutes."),
    "verify.code": ("Code (6 Ziffern)", "Code (6 digits)"),
    "verify.submit": ("Termine verbindlich buchen", "Book the appointments"),
    "verify.resend": ("Neuen Code schicken", "Send a new code"),
    "verify.resent": ("Wir schicken einen neuen Code.", "We are sending a new code."),
    # confirmation
    "conf.heading": ("Ihre Termine sind gebucht", "Your appointments are booked"),
    "conf.code": ("Ihr Buchungscode", "Your booking code"),
    "conf.keep": (
        "Bitte schreiben Sie den Code auf oder drucken Sie diese Seite aus. "
        "Mit dem Code und Ihrem Geburtsdatum können Sie den Termin ansehen oder absagen.",
        "Please write the code down or print this page. With the code and your date of "
        "birth you can see or cancel the appointment.",
    ),
    "conf.print": ("Seite drucken", "Print this page"),
    "conf.where": ("Wo", "Where"),
    "conf.name": ("Name", "Name"),
    "conf.bring": (
        "Bringen Sie mit: Personalausweis, Krankenkassenkarte, Impfpass (wenn vorhanden).",
        "Please bring: ID card, health insurance card, vaccination card (if you have one).",
    ),
    "conf.status_cancelled": ("Dieser Termin ist abgesagt.", "This appointment is cancelled."),
    # manage
    "manage.heading": ("Termin ansehen oder absagen", "See or cancel an appointment"),
    "manage.code": ("Buchungscode", "Booking code"),
    "manage.code_hint": ("Zum Beispiel K7QM-3XZA", "For example K7QM-3XZA"),
    "manage.submit": ("Termin anzeigen", "Show appointment"),
    "manage.cancel": ("Termin absagen", "Cancel the appointment"),
    "manage.cancel_note": (
        "Wenn Sie absagen, bekommt ein anderer Mensch Ihre Termine. Das geht nicht rückgängig.",
        "If you cancel, someone else gets your appointments. This cannot be undone.",
    ),
    "manage.cancel_code": (
        "Zum Absagen schicken wir einen Code an {masked}.",
        "To cancel, we send a code to {masked}.",
    ),
    "manage.send_code": ("Code zum Absagen schicken", "Send a code to cancel"),
    "manage.confirm_cancel": ("Ja, Termin absagen", "Yes, cancel the appointment"),
    "manage.cancelled_heading": ("Ihr Termin ist abgesagt", "Your appointment is cancelled"),
    "manage.cancelled": (
        "Danke. Die Termine gehen an Menschen auf der Warteliste.",
        "Thank you. The appointments go to people on the waiting list.",
    ),
    # messages sent by SMS / e-mail
    "msg.code": ("Ihr Code für die Impftermin-Buchung: {code}. Er gilt {minutes} Minuten.",
                 "Your code for booking a vaccination appointment: {code}. Valid "
                 "{minutes} minutes."),
    "msg.cancel_code": ("Code zum Absagen Ihres Impftermins: {code}. Er gilt {minutes} Minuten.",
                        "Code to cancel your vaccination appointment: {code}. Valid {minutes} "
                        "minutes."),
    "msg.booked": (
        "Ihre Impftermine sind gebucht. Buchungscode: {booking}. Bitte gut aufheben.",
        "Your vaccination appointments are booked. Booking code: {booking}. Please keep it.",
    ),
    "msg.assigned": (
        "Gute Nachricht: Sie haben Impftermine von der Warteliste. Buchungscode: {booking}. "
        "Die Termine sehen Sie unter 'Termin ansehen' mit Code und Geburtsdatum.",
        "Good news: you have vaccination appointments from the waiting list. Booking code: "
        "{booking}. See them under 'See an appointment' with the code and your date of birth.",
    ),
    # errors
    "err.heading": ("Das hat nicht geklappt", "That did not work"),
    "err.birth_date_missing": ("Bitte geben Sie das Geburtsdatum ein.",
                               "Please enter the date of birth."),
    "err.birth_date_format": ("Bitte schreiben Sie das Geburtsdatum so: 24.12.1938.",
                              "Please write the date of birth like this: 24.12.1938."),
    "err.birth_date_invalid": ("Dieses Datum gibt es nicht. Bitte prüfen Sie Tag und Monat.",
                               "This date does not exist. Please check the day and month."),
    "err.birth_date_future": ("Das Geburtsdatum liegt in der Zukunft.",
                              "The date of birth is in the future."),
    "err.birth_date_too_old": ("Bitte prüfen Sie das Geburtsjahr.",
        "Please check the year of birth."),
    "err.postcode_invalid": ("Die Postleitzahl hat fünf Ziffern.", "The postcode has five digits."),
    "err.postcode_unknown": (
        "Diese Postleitzahl kennen wir nicht. Sie muss in {region} liegen.",
        "We do not know this postcode. It must be in {region}.",
    ),
    "err.invitation_needed": ("Bitte geben Sie den Code aus Ihrem Einladungsbrief ein.",
                              "Please enter the code from your invitation letter."),
    "err.invitation_invalid": (
        "Diesen Einladungscode kennen wir nicht, oder er wurde schon benutzt.",
        "We do not know this invitation code, or it has been used already.",
    ),
    "err.invitation_age": ("Dieser Einladungscode gilt für ältere Menschen.",
                           "This invitation code is for older people."),
    "err.name_missing": ("Bitte geben Sie den Namen ein.", "Please enter the name."),
    "err.name_invalid": ("Bitte prüfen Sie den Namen.", "Please check the name."),
    "err.contact_missing": ("Bitte geben Sie eine Handynummer oder E-Mail-Adresse ein.",
                            "Please enter a mobile number or e-mail address."),
    "err.email_invalid": ("Bitte prüfen Sie die E-Mail-Adresse.",
        "Please check the e-mail address."),
    "err.phone_invalid": ("Bitte prüfen Sie die Handynummer, zum Beispiel 0151 2345678.",
                          "Please check the mobile number, for example 0151 2345678."),
    "err.not_eligible": ("Sie können noch nicht buchen.", "You cannot book yet."),
    "err.outside_district": (
        "Sie können nur in Ihrem eigenen Kreis buchen.", "You can only book in your own district.",
    ),
    "err.centre_unknown": ("Dieses Impfzentrum kennen wir nicht.", "We do not know this centre."),
    "err.slot_invalid": ("Diese Termine gibt es nicht.", "These appointments do not exist."),
    "err.pair_gone": (
        "Diese Termine hat gerade ein anderer Mensch genommen. Bitte wählen Sie andere.",
        "Someone else has just taken these appointments. Please choose others.",
    ),
    "err.pair_invalid": ("Diese zwei Termine passen nicht zusammen.",
                         "These two appointments do not fit together."),
    "err.hold_missing": ("Diese Reservierung gibt es nicht.", "This reservation does not exist."),
    "err.hold_expired": (
        "Die Reservierung ist abgelaufen. Bitte wählen Sie die Termine noch einmal.",
        "The reservation has run out. Please choose the appointments again.",
    ),
    "err.no_details": ("Bitte geben Sie zuerst Name und Handynummer ein.",
                       "Please enter the name and mobile number first."),
    "err.already_booked": (
        "Für diesen Menschen gibt es schon eine Buchung. Jeder Mensch bucht nur einmal.",
        "There is already a booking for this person. Each person books only once.",
    ),
    "err.code_missing": ("Bitte geben Sie den Code ein.", "Please enter the code."),
    "err.code_wrong": ("Der Code stimmt nicht. Sie haben noch {remaining} Versuche.",
                       "The code is not right. You have {remaining} more tries."),
    "err.code_locked": (
        "Zu viele falsche Codes. Bitte fangen Sie noch einmal an oder rufen Sie 116 117 an.",
        "Too many wrong codes. Please start again or call 116 117.",
    ),
    "err.code_expired": ("Der Code ist abgelaufen. Bitte lassen Sie sich einen neuen schicken.",
                         "The code has run out. Please ask for a new one."),
    "err.code_not_delivered": (
        "Der Code ist noch unterwegs. Bitte warten Sie einen Moment.",
        "The code is still on its way. Please wait a moment.",
    ),
    "err.code_failed": (
        "Wir konnten keinen Code schicken. Bitte prüfen Sie die Nummer oder Adresse.",
        "We could not send a code. Please check the number or address.",
    ),
    "err.code_wait": ("Bitte warten Sie {seconds} Sekunden, dann können Sie einen neuen Code "
                      "anfordern.", "Please wait {seconds} seconds before asking for a new code."),
    "err.code_too_many": ("Wir haben schon mehrere Codes geschickt. Bitte rufen Sie 116 117 an.",
                          "We have sent several codes already. Please call 116 117."),
    "err.unverified": ("Bitte geben Sie zuerst den Code ein.", "Please enter the code first."),
    "err.booking_not_found": (
        "Wir finden keine Buchung mit diesem Code und Geburtsdatum.",
        "We cannot find a booking with this code and date of birth.",
    ),
    "err.booking_code_invalid": ("Der Buchungscode sieht so aus: K7QM-3XZA.",
                                 "A booking code looks like this: K7QM-3XZA."),
    "err.booking_not_active": ("Dieser Termin ist schon abgesagt.",
                               "This appointment is already cancelled."),
    "err.cancel_too_late": ("Die erste Impfung war schon. Bitte rufen Sie 116 117 an.",
                            "The first dose has already taken place. Please call 116 117."),
    "err.already_waiting": ("Sie stehen schon auf der Warteliste.",
                            "You are already on the waiting list."),
    "err.csrf_invalid": (
        "Das Formular ist zu alt. Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.",
        "The form is too old. Please reload the page and try again.",
    ),
    "err.pass_missing": (
        "Bitte stellen Sie sich zuerst in die Warteschlange. Dann kommen Sie hierher.",
        "Please join the queue first. Then you will come here.",
    ),
    "err.pass_invalid": ("Ihr Eintritt ist nicht gültig. Bitte stellen Sie sich neu an.",
                         "Your admission is not valid. Please join the queue again."),
    "err.pass_expired": ("Ihre Zeit zum Buchen ist abgelaufen. Bitte stellen Sie sich neu an.",
                         "Your booking time has ended. Please join the queue again."),
    "err.pass_foreign": ("Ihr Eintritt gilt für eine andere Warteschlange.",
                         "Your admission is for another queue."),
    "err.queue_link": ("Zur Warteschlange", "Go to the queue"),
    "err.body_too_large": ("Die Anfrage ist zu groß.", "The request is too large."),
    "err.json_invalid": ("Die Anfrage ist kein gültiges JSON.", "The request is not valid JSON."),
    "err.json_object": ("Die Anfrage muss ein JSON-Objekt sein.",
        "The request must be a JSON object."),
    "err.field_missing": ("Das Feld {field} fehlt.", "The field {field} is missing."),
    "err.field_type": ("Das Feld {field} hat den falschen Typ.",
        "The field {field} has the wrong type."),
    "err.unsupported_media_type": ("Bitte senden Sie application/json.",
                                   "Please send application/json."),
    "err.not_found": ("Diese Seite gibt es nicht.", "This page does not exist."),
    "err.method_not_allowed": ("Das geht hier nicht.", "This is not allowed here."),
    "err.internal_error": (
        "Bei uns ist ein Fehler passiert. Bitte versuchen Sie es gleich noch einmal. "
        "Ihre Reservierung bleibt bestehen.",
        "Something went wrong on our side. Please try again in a moment. "
        "Your reservation is kept.",
    ),
    "err.store_unavailable": (
        "Das System ist gerade überlastet. Bitte versuchen Sie es in einer Minute noch einmal. "
        "Ihre Reservierung bleibt bestehen.",
        "The system is busy right now. Please try again in a minute. Your reservation is kept.",
    ),
    "err.not_ready": ("Die Buchung ist noch nicht geöffnet.", "Booking is not open yet."),
    "err.idempotency_key_reused": (
        "Dieser Idempotency-Key gehört zu einer anderen Anfrage.",
        "This Idempotency-Key belongs to another request.",
    ),
    "err.idempotency_key_invalid": ("Der Idempotency-Key ist ungültig (1 bis 100 Zeichen).",
                                    "The Idempotency-Key is invalid (1 to 100 characters)."),
    "err.unauthorized": ("Anmeldung fehlt.", "Authentication required."),
    "err.bad_request": ("Die Anfrage ist ungültig.", "The request is not valid."),
    "err.internal": (
        "Ein Fehler ist passiert. Bitte versuchen Sie es noch einmal.",
        "Something went wrong. Please try again.",
    ),
    "err.try_again": ("Noch einmal versuchen", "Try again"),
}

WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def translate(lang: str, key: str, params: Mapping[str, object] | None = None) -> str:
    pair = TEXTS.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def translator(lang: str) -> Callable[..., str]:
    def t(key: str, **params: object) -> str:
        return translate(lang, key, params)

    return t


def pick_language(request: web.Request) -> str:
    asked = request.query.get("lang", "")
    if asked in LANGS:
        return asked
    cookie = request.cookies.get(LANG_COOKIE, "")
    if cookie in LANGS:
        return cookie
    return from_accept_language(request.headers.get("Accept-Language", ""))


def from_accept_language(header: str) -> str:
    """The best of de/en by q-value; German when nothing matches."""
    best, best_q = "de", -1.0
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best
