"""Centres, districts and the postcode -> district map: loaded by operators, shared through
the database.

The catalogue is one JSON document (see `data/niedersachsen.json`), stored with a version
number so every backend process sees the same centres; each process keeps a parsed copy and
re-reads the document only when the version changed. Its centres are rows of `centres` too,
which the slots refer to.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from booking_backend.db import Connection, Database

DEMO_FILE = "niedersachsen.json"
# A map of an address without JavaScript or a third party's script on our pages: a link to
# OpenStreetMap's search.
MAP_SEARCH_URL = "https://www.openstreetmap.org/search"


class CatalogueError(ValueError):
    """A catalogue document is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Centre:
    id: str
    name: str
    town: str
    district: str
    postcode: str
    street: str = ""  # optional in a catalogue document: older ones have none

    @property
    def address(self) -> str:
        """`Street 1, 12345 Town` (or `12345 Town` without a street)."""
        place = f"{self.postcode} {self.town}"
        return f"{self.street}, {place}" if self.street else place

    @property
    def map_url(self) -> str:
        """OpenStreetMap's search for the address."""
        return f"{MAP_SEARCH_URL}?{urlencode({'query': self.address})}"


@dataclass(frozen=True, slots=True)
class District:
    id: str
    name: str
    postcodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Catalogue:
    name: str
    districts: dict[str, District]
    centres: dict[str, Centre]
    postcodes: dict[str, str]  # postcode -> district id

    def district_of(self, postcode: str) -> District | None:
        """The district of a postcode: an exact entry, else the district that most of the
        known postcodes with the same first three digits belong to."""
        district = self.postcodes.get(postcode)
        if district is None:
            votes: dict[str, int] = {}
            for known, did in self.postcodes.items():
                if known[:3] == postcode[:3]:
                    votes[did] = votes.get(did, 0) + 1
            if votes:
                district = max(sorted(votes), key=lambda d: votes[d])
        return None if district is None else self.districts.get(district)

    def centres_of(self, district: str) -> list[Centre]:
        return [c for c in self.centres.values() if c.district == district]

    def centres_for(self, postcode: str, *, home_only: bool, limit: int) -> list[Centre]:
        """Centres of the home district first, then (unless refused) the nearest others,
        nearness judged crudely by postcode distance."""
        district = self.district_of(postcode)
        home = self.centres_of(district.id) if district else []
        if home_only:
            return home
        try:
            number = int(postcode)
        except ValueError:
            number = 0
        others = sorted(
            (c for c in self.centres.values() if c not in home),
            key=lambda c: (abs(int(c.postcode) - number), c.id),
        )
        return (home + others)[: max(limit, len(home))]


def parse_catalogue(raw: object) -> Catalogue:
    if not isinstance(raw, dict):
        raise CatalogueError("the catalogue must be a JSON object")
    districts: dict[str, District] = {}
    postcodes: dict[str, str] = {}
    for i, item in enumerate(_list(raw, "districts")):
        did, name = _str(item, "id", f"districts[{i}]"), _str(item, "name", f"districts[{i}]")
        codes = item.get("postcodes")
        if not isinstance(codes, list) or not all(_is_postcode(c) for c in codes):
            raise CatalogueError(f"districts[{i}].postcodes must be a list of 5-digit strings")
        districts[did] = District(did, name, tuple(codes))
        for code in codes:
            postcodes[code] = did
    centres: dict[str, Centre] = {}
    for i, item in enumerate(_list(raw, "centres")):
        where = f"centres[{i}]"
        cid = _str(item, "id", where)
        if not cid.replace("-", "").isalnum() or not cid.isascii():
            raise CatalogueError(f"{where}.id may hold ASCII letters, digits and - only")
        home = _str(item, "district", where)
        if home not in districts:
            raise CatalogueError(f"{where}.district {home!r} is not a listed district")
        code = _str(item, "postcode", where)
        if not _is_postcode(code):
            raise CatalogueError(f"{where}.postcode must be 5 digits")
        street = item.get("street", "")
        if not isinstance(street, str):
            raise CatalogueError(f"{where}.street must be a string")
        centres[cid] = Centre(cid, _str(item, "name", where), _str(item, "town", where),
                              home, code, street.strip())
    if not centres:
        raise CatalogueError("the catalogue lists no centre")
    title = raw.get("name")
    return Catalogue(title if isinstance(title, str) else "", districts, centres, postcodes)


def demo_catalogue_json() -> str:
    folder = importlib.resources.files("booking_backend") / "data"
    return (folder / DEMO_FILE).read_text(encoding="utf-8")


def _list(raw: dict[str, object], name: str) -> list[dict[str, object]]:
    value = raw.get(name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CatalogueError(f"{name} must be a list of objects")
    return value


def _str(item: dict[str, object], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}.{name} must be a non-empty string")
    return value.strip()


def _is_postcode(value: object) -> bool:
    return isinstance(value, str) and len(value) == 5 and value.isascii() and value.isdigit()


class CatalogueCache:
    """This process's parsed copy of the shared catalogue."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._version = 0
        self._catalogue: Catalogue | None = None

    async def save(self, document: str) -> Catalogue:
        """Validate and store a catalogue document; every process picks it up."""
        try:
            catalogue = parse_catalogue(json.loads(document))
        except json.JSONDecodeError as exc:
            raise CatalogueError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        centres = list(catalogue.centres.values())

        async def work(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO catalogue (singleton, version, document) VALUES (true, 1, $1)"
                " ON CONFLICT (singleton) DO UPDATE"
                " SET version = catalogue.version + 1, document = $1", document)
            # A centre that leaves the catalogue stays a row: its slots and bookings remain.
            await conn.execute(
                "INSERT INTO centres (id, district, name)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
                " ON CONFLICT (id) DO UPDATE SET district = EXCLUDED.district,"
                " name = EXCLUDED.name",
                [c.id for c in centres], [c.district for c in centres],
                [c.name for c in centres])

        await self._db.transaction(work)
        return catalogue

    async def get(self) -> Catalogue | None:
        # One round trip: the document comes along only when the version changed.
        row = await self._db.fetchrow(
            "SELECT version, CASE WHEN version <> $1 THEN document END AS document"
            " FROM catalogue", self._version if self._catalogue is not None else -1)
        if row is None:
            return None
        if row["document"] is not None:
            self._catalogue = parse_catalogue(json.loads(row["document"]))
            self._version = row["version"]
        return self._catalogue
