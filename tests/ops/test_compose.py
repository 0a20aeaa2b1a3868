"""compose.yaml against the Compose Specification's JSON schema, and against what the stack
must be: Redis with AOF, two gates sharing it behind one entry point, the booking backend,
Prometheus scraping every admin port, Grafana provisioned; secrets only from the environment.
The same holds for compose.yaml with the override compose.sentinel.yaml merged over it (as
`docker compose -f compose.yaml -f compose.sentinel.yaml` merges them), which must in
addition be a master, a replica and three Sentinels agreeing with the gates' settings.

Docker is not run here (no engine in CI): the file is validated, not started.
`compose-spec.json` beside this file is the Compose Specification's schema
(github.com/compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0, licence in
LICENSE.compose-spec), as vendored by check-jsonschema 0.39.0; sha256
d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.ops.dashboards import COMPOSE_PROMETHEUS, ROOT, dashboard_files, load_dashboard, panels

NEEDS = "needs PyYAML and jsonschema (the dev extra: pyyaml>=6, jsonschema>=4.18)"
yaml = pytest.importorskip("yaml", reason=NEEDS)
jsonschema = pytest.importorskip("jsonschema", reason=NEEDS)

COMPOSE = ROOT / "compose.yaml"
SENTINEL_OVERRIDE = ROOT / "compose.sentinel.yaml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|_KEY$")
# Inside a container every port listens on all of its interfaces; the host publishes.
ALL = "0.0.0.0"  # noqa: S104
GATE_COMMAND = ["queue-gate", "--host", ALL, "--port", "8080",
                "--admin-host", ALL, "--admin-port", "8081"]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# Lists an override file replaces rather than extends (Compose Specification, "Merge").
REPLACED_LISTS = {"command", "entrypoint", "test"}


def merge(base: Any, override: Any, key: str = "") -> Any:
    """`override` over `base` as `docker compose -f base -f override` merges them: mappings
    key by key, commands and healthcheck tests replaced, other lists extended."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {k: merge(base[k], v, k) if k in base else v for k, v in override.items()} | {
            k: v for k, v in base.items() if k not in override}
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED_LISTS:
        return base + [item for item in override if item not in base]
    return override


def sentinel_stack() -> dict[str, Any]:
    document: dict[str, Any] = merge(load_yaml(COMPOSE), load_yaml(SENTINEL_OVERRIDE))
    return document


@pytest.fixture(scope="module", params=["compose.yaml", "compose.yaml + compose.sentinel.yaml"])
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "compose.yaml":
        document: dict[str, Any] = load_yaml(COMPOSE)
        return document
    return sentinel_stack()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def by_command(services: dict[str, dict[str, Any]], program: str) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("command", [None])[0] == program}


def env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "write environment as a mapping"
    return {k: str(v) for k, v in environment.items()}


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """./source -> target of the service's bind mounts (named volumes left out)."""
    return {v.split(":")[0]: v.split(":")[1] for v in service.get("volumes", [])
            if v.startswith("./")}


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def redis_server(service: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """The redis-server a service runs (None if it runs another program): its arguments,
    and the lines a `sh -c` command writes into its config file at the first start (a
    Sentinel set-up's servers run on a file of their own that Sentinel rewrites)."""
    command = service.get("command", [])
    if command[:1] == ["redis-server"]:
        return command, []
    if command[:2] != ["sh", "-c"] or "--sentinel" in command[2]:
        return None
    before, _, run = command[2].partition("exec docker-entrypoint.sh ")
    argv = shlex.split(run)
    if argv[:1] != ["redis-server"]:
        return None
    written = re.search(r"echo '([^']*)' > (\S+);", before)
    config = argv[1]
    # The file exists before the server starts, and is the one it runs on.
    assert written is None or written.group(2) == config, command
    assert written or f"touch {config} " in before, command
    return argv, written.group(1).splitlines() if written else []


def redis_servers(services: dict[str, dict[str, Any]]
                  ) -> dict[str, tuple[list[str], list[str]]]:
    return {name: found for name, s in services.items()
            if (found := redis_server(s)) is not None}


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_every_service_has_an_image_and_restarts(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"redis", "postgres", "booking", "entry", "prometheus", "grafana"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert service.get("restart") == "unless-stopped", name


def test_secrets_come_only_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    secrets = 0
    for name, service in services.items():
        for key, value in env(service).items():
            if SECRET_NAME.search(key):
                secrets += 1
                # ${NAME:?message}: compose refuses to start while it is unset.
                assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}", value), (name, key, value)
    assert secrets >= 5
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


def test_postgres_keeps_its_data_in_a_volume(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert any(v == "postgres-data:/var/lib/postgresql/data" for v in postgres["volumes"])
    assert "pg_isready" in postgres["healthcheck"]["test"]
    # One password for the server and the backend, from the environment.
    assert env(postgres)["POSTGRES_PASSWORD"].split(":?")[0] == (
        env(services["booking"])["PGPASSWORD"].split(":?")[0])


def test_redis_keeps_an_append_only_file(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command, _ = redis_servers(services)["redis"]
    assert flag(command, "--appendonly") == "yes"
    assert flag(command, "--appendfsync") == "everysec"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "healthcheck" in redis


def test_two_gates_share_redis_behind_one_entry_point(
        services: dict[str, dict[str, Any]]) -> None:
    gates = by_command(services, "queue-gate")
    assert len(gates) >= 2
    booking = next(iter(by_command(services, "booking-backend")))
    for name, gate in gates.items():
        assert gate["command"] == GATE_COMMAND, name
        variables = env(gate)
        assert variables["REDIS_URL"] == "redis://redis:6379/0", name
        assert variables["BACKEND_URL"] == f"http://{booking}:8082", name
        assert {"QUEUE_GATE_SECRETS", "QUEUE_GATE_ADMIN_TOKEN"} <= set(variables), name
        assert gate["build"] == ".", name
        assert gate["depends_on"]["redis"]["condition"] == "service_healthy", name
        # The admin port is for operators on the host only.
        for port in gate.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    # One room: every gate serves the same one.
    assert len({env(g)["QUEUE_GATE_ROOM"] for g in gates.values()}) == 1

    entry = services["entry"]
    assert bind_mounts(entry)["./deploy/nginx.conf"] == "/etc/nginx/nginx.conf"
    config = ROOT / "deploy" / "nginx.conf"
    upstreams = set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", config.read_text(), re.M))
    assert upstreams == {f"{name}:8080" for name in gates}
    assert entry["ports"] == ["8080:8080"]
    assert set(entry["depends_on"]) == set(gates)
    # The gates count joins per visitor address: they must believe the entry point's
    # X-Forwarded-For (and only its), which nginx must set.
    entry_address = entry["networks"]["default"]["ipv4_address"]
    for name, gate in gates.items():
        assert env(gate)["QUEUE_GATE_TRUSTED_PROXIES"] == f"{entry_address}/32", name
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in config.read_text()


def test_the_booking_backend_runs_behind_the_gates(services: dict[str, dict[str, Any]]) -> None:
    (name, booking), = by_command(services, "booking-backend").items()
    command = booking["command"]
    assert flag(command, "--host") == ALL
    assert flag(command, "--port") == "8082"
    # Prometheus scrapes the admin port from another container: it must not be loopback.
    assert flag(command, "--admin-host") == ALL
    assert flag(command, "--admin-port") == "9082"
    variables = env(booking)
    assert variables["BOOKING_DATABASE_URL"].startswith("postgresql://booking@postgres:5432/")
    assert "--migrate" in command
    assert booking["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The console sender writes codes to the log: never in a deployment.
    assert variables["BOOKING_SENDER"] == "webhook"
    gate = next(iter(by_command(services, "queue-gate").values()))
    # Gate and backend check passes with the same secrets, from the same variable.
    assert variables["QUEUE_GATE_SECRETS"].split(":?")[0] == (
        env(gate)["QUEUE_GATE_SECRETS"].split(":?")[0])
    assert variables["BOOKING_PASS_ROOM"] == env(gate)["QUEUE_GATE_ROOM"]
    # Only through the gate: the public port is not published.
    assert all(p.startswith("127.0.0.1:9082:") for p in booking.get("ports", [])), name


def test_prometheus_scrapes_every_admin_port(services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(COMPOSE_PROMETHEUS)
    jobs = {job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
            for job in config["scrape_configs"]}
    gates = by_command(services, "queue-gate")
    assert jobs["queue-gate"] == {f"{name}:{flag(g['command'], '--admin-port')}"
                                  for name, g in gates.items()}
    (booking_name, booking), = by_command(services, "booking-backend").items()
    assert jobs["booking-backend"] == {
        f"{booking_name}:{flag(booking['command'], '--admin-port')}"}
    prometheus = services["prometheus"]
    mounts = bind_mounts(prometheus)
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    # rule_files are relative to the config: alerts.yml must sit beside it.
    assert config["rule_files"] == ["alerts.yml"]
    assert mounts["./prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_is_provisioned_with_the_datasource_the_dashboards_use(
        services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    assert mounts["./grafana/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./grafana/dashboards"] == "/etc/grafana/provisioning/dashboards"
    provider = load_yaml(ROOT / "grafana" / "dashboards" / "provider.yaml")
    (only,) = provider["providers"]
    assert only["type"] == "file"
    assert only["options"]["path"] == mounts["./grafana/dashboards"]
    home = env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana" / "dashboards" / Path(home).name).exists()

    datasources = load_yaml(ROOT / "grafana" / "datasources" / "prometheus.yaml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in services
    scrape_interval = load_yaml(COMPOSE_PROMETHEUS)["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape_interval
    for path in dashboard_files():
        for panel in panels(load_dashboard(path)):
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == source["uid"], (path.name, panel["title"])
                for target in panel["targets"]:
                    assert target["datasource"]["uid"] == source["uid"]


def test_every_mounted_file_is_in_the_repository(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source in bind_mounts(service):
            assert (ROOT / source).exists(), (name, source)


def test_only_the_entry_point_is_published_beyond_this_host(
        services: dict[str, dict[str, Any]]) -> None:
    public = {name: port for name, s in services.items() for port in s.get("ports", [])
              if not str(port).startswith("127.0.0.1:")}
    assert public == {"entry": "8080:8080"}


def test_the_image_is_python_slim_installed_with_pip_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert stages and all(s == "python:3.11-slim" for s in stages), stages
    assert re.search(r"^RUN pip install .*\s\.$", dockerfile, re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # Everything `pip install .` reads is copied in.
    copied = " ".join(re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M))
    for needed in ("pyproject.toml", "README.md", "constraints", "queue_gate", "booking_backend",
                   "vaccine_queue", "templates"):
        assert needed in copied, needed
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "tests", ".env"} <= set(ignored)
    assert not {"queue_gate", "booking_backend", "vaccine_queue", "templates", "constraints",
                "pyproject.toml"} & set(ignored)
    # Installed at the versions CI tested.
    assert re.search(r"^RUN pip install .*-c constraints/production\.txt", dockerfile, re.M)


def test_the_sentinel_override_alone_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in
              jsonschema.Draft202012Validator(schema).iter_errors(load_yaml(SENTINEL_OVERRIDE))]
    assert not errors, errors


def test_every_dependency_and_named_volume_exists(compose: dict[str, Any]) -> None:
    services: dict[str, dict[str, Any]] = compose["services"]
    declared = set(compose.get("volumes", {}))
    used = set()
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for volume in service.get("volumes", []):
            if not volume.startswith("./"):
                used.add(volume.split(":")[0])
    assert used == declared


def sentinel_config(service: dict[str, Any]) -> tuple[str, dict[str, list[str]]]:
    """The file a Sentinel service's command writes and runs, and its lines by directive
    (`sentinel monitor ...` under "monitor")."""
    shell, flag_, script = service["command"]
    assert (shell, flag_) == ("sh", "-c")
    written = re.search(r"cat > (\S+) <<'CONF'\n(.*?)\nCONF\n", script, re.S)
    assert written, script
    run = re.search(r"^exec docker-entrypoint\.sh redis-server (\S+) --sentinel$", script, re.M)
    assert run and run.group(1) == written.group(1), script
    lines: dict[str, list[str]] = {}
    for line in written.group(2).splitlines():
        words = line.split()
        words = words[1:] if words[0] == "sentinel" else words
        lines[words[0]] = words[1:]
    return written.group(1), lines


def test_sentinels_watch_the_master_the_gates_ask_for() -> None:
    services: dict[str, dict[str, Any]] = sentinel_stack()["services"]
    sentinels = {name: s for name, s in services.items()
                 if "--sentinel" in " ".join(s.get("command", []))}
    assert len(sentinels) == 3
    gates = by_command(services, "queue-gate")
    masters = {name for name, (_, config) in redis_servers(services).items()
               if not any(line.startswith("replicaof ") for line in config)}
    volumes = []
    for name, sentinel in sentinels.items():
        path, config = sentinel_config(sentinel)
        master_name, host, port, quorum = config["monitor"]
        assert host in masters and port == "6379", (name, host, port)
        # A majority must agree that the master is down, and a majority can still be had
        # with one Sentinel lost.
        assert len(sentinels) // 2 < int(quorum) < len(sentinels), (name, quorum)
        assert config["port"] == ["26379"], name
        # Reached over the compose network: protected mode would answer loopback only.
        assert config["protected-mode"] == ["no"], name
        assert not sentinel.get("ports"), name
        # Known to the others by its service name (its address changes when recreated).
        assert config["announce-ip"] == [name], name
        assert config["resolve-hostnames"] == config["announce-hostnames"] == ["yes"], name
        assert config["down-after-milliseconds"][0] == master_name, name
        assert master_name in " ".join(sentinel["healthcheck"]["test"]), name
        # Sentinel rewrites its file: a volume of its own holds it.
        (volume,) = [v for v in sentinel["volumes"] if v.endswith(":" + str(Path(path).parent))]
        volumes.append(volume.split(":")[0])
        assert sentinel.get("restart") == "unless-stopped", name
        for gate_name, gate in gates.items():
            variables = env(gate)
            assert variables["QUEUE_GATE_REDIS_MASTER"] == master_name, gate_name
            assert gate["depends_on"][name]["condition"] == "service_healthy", gate_name
    assert len(set(volumes)) == len(sentinels)
    for gate_name, gate in gates.items():
        variables = env(gate)
        assert set(variables["QUEUE_GATE_REDIS_SENTINELS"].split(",")) == {
            f"{name}:26379" for name in sentinels}, gate_name
        assert variables["QUEUE_GATE_REQUIRE_DURABLE_REDIS"] == "1", gate_name
        assert "QUEUE_GATE_REDIS_CLUSTER" not in variables, gate_name


def test_the_replica_copies_the_master_and_both_keep_an_append_only_file() -> None:
    services: dict[str, dict[str, Any]] = sentinel_stack()["services"]
    servers = redis_servers(services)
    replicas = {name: config for name, (_, config) in servers.items()
                if any(line.startswith("replicaof ") for line in config)}
    (master,) = set(servers) - set(replicas)
    assert len(replicas) == 1
    for name, (command, _) in servers.items():
        service = services[name]
        assert flag(command, "--appendonly") == "yes", name
        assert flag(command, "--appendfsync") == "everysec", name
        # After a failover the old master is a replica: each announces its service name.
        assert flag(command, "--replica-announce-ip") == name, name
        # The role is Sentinel's to change and to write into the config file (CONFIG
        # REWRITE), which a restart reads: never fixed on the command line.
        assert "--replicaof" not in command and "--slaveof" not in command, name
        config_file = Path(command[1])
        assert config_file.suffix == ".conf" and any(
            v.endswith(f":{config_file.parent}") for v in service["volumes"]), name
        assert "healthcheck" in service, name
    for name, config in replicas.items():
        assert f"replicaof {master} 6379" in config, name
        assert services[name]["depends_on"][master]["condition"] == "service_healthy", name
    assert len({v for name in servers for v in services[name]["volumes"]}) == len(servers)


def test_the_schema_check_would_catch_a_broken_file(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = {**compose, "services": {**compose["services"],
                                      "redis": {**compose["services"]["redis"],
                                                "restart": ["always"], "heathcheck": {}}}}
    messages = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(broken)]
    assert len(messages) == 2, messages
