"""Centres, districts and the postcode -> district map: loaded by operators, shared via Redis.

The catalogue is one JSON document (see `data/niedersachsen.json`). It is stored in Redis with
a version number so every backend process sees the same centres; each process keeps a parsed
copy and re-reads it only when the version changed.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass

from booking_backend.store import Store

DEMO_FILE = "niedersachsen.json"


class CatalogueError(ValueError):
    """A catalogue document is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Centre:
    id: str
    name: str
    town: str
    district: str
    postcode: str


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
        centres[cid] = Centre(cid, _str(item, "name", where), _str(item, "town", where),
                              home, code)
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
    return isinstance(value, str) and len(value) == 5 and value.isdigit()


class CatalogueCache:
    """This process's parsed copy of the shared catalogue."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._version = ""
        self._catalogue: Catalogue | None = None

    async def save(self, document: str) -> Catalogue:
        """Validate and store a catalogue document; every process picks it up."""
        try:
            catalogue = parse_catalogue(json.loads(document))
        except json.JSONDecodeError as exc:
            raise CatalogueError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        async with self._store.guard():
            pipe = self._store.redis.pipeline(transaction=True)
            pipe.hset(self._store.keys.catalogue, "json", document)
            pipe.hincrby(self._store.keys.catalogue, "version", 1)
            await pipe.execute()
        return catalogue

    async def get(self) -> Catalogue | None:
        version = await self._store.hget(self._store.keys.catalogue, "version")
        if version is None:
            return None
        # Race: a save between the two reads pairs an old version with new JSON; the next
        # request sees the newer version and reads again, so the copy is stale at most once.
        if version != self._version or self._catalogue is None:
            document = await self._store.hget(self._store.keys.catalogue, "json")
            if document is None:
                return None
            self._catalogue = parse_catalogue(json.loads(document))
            self._version = version
        return self._catalogue
