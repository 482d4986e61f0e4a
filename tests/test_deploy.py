"""Deployment files (``deploy/``, ``.dockerignore``, ``docs/deploy.md``): each carries what the
daemon needs to run safely there, agrees with the code (roles, settings, paths, ports), and
passes the tool made to check it when that tool is installed."""

from __future__ import annotations

import asyncio
import http.server
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
import yaml

from monitor.app.config_files import load_config
from monitor.app.daemon import DRAIN_S, ROLES, App
from monitor.app.settings import Settings
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HEALTHCHECK = DEPLOY / "healthcheck.py"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "newsmonitor.env.example"
UNIT = DEPLOY / "systemd" / "newsmonitor.service"
TEMPLATE = DEPLOY / "systemd" / "newsmonitor@.service"
DOCS = ROOT / "docs" / "deploy.md"

RULES_DIR = "/etc/newsmonitor/rules"
DATA_DIR = "/var/lib/newsmonitor"
HTTP_PORT = 9120
INSTALLED_MONITOR = "/opt/newsmonitor/bin/monitor"


def deploy_files() -> list[Path]:
    """Every file this suite covers, for the checks that span them all."""
    found = [
        path
        for path in DEPLOY.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != "newsmonitor.env"
    ]
    return sorted([*found, DOCKERIGNORE, DOCS])


def which(tool: str) -> str:
    """The tool's path, or a skip that says which tool is missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def roles_of(args: list[str]) -> list[str]:
    """The values of ``--role`` in an argument list (``--role x`` and ``--role=x``)."""
    roles = []
    for i, arg in enumerate(args):
        if arg == "--role" and i + 1 < len(args):
            roles.append(args[i + 1])
        elif arg.startswith("--role="):
            roles.append(arg.removeprefix("--role="))
    return roles


# --------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return result


def final_stage(found: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(found) if ins.keyword == "FROM")
    return found[last_from:]


def env_of(found: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in found:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def image_user() -> tuple[int, int]:
    (user,) = [ins.args for ins in final_stage(instructions(DOCKERFILE)) if ins.keyword == "USER"]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def test_the_image_is_built_in_two_stages_from_one_pinned_slim_python() -> None:
    found = instructions(DOCKERFILE)
    froms = [ins.args.split() for ins in found if ins.keyword == "FROM"]
    assert len(froms) == 2
    assert froms[0][1:] == ["AS", "builder"]
    images = {words[0] for words in froms}
    assert len(images) == 1, "builder and final stage must use the same Python"
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    copies = [ins.args for ins in final_stage(found) if ins.keyword == "COPY"]
    assert any(args.startswith("--from=builder ") for args in copies)
    assert not any(ins.keyword == "RUN" and "pip" in ins.args for ins in final_stage(found))


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    uid, gid = image_user()
    assert uid >= 1000
    assert gid >= 1000
    creates_user = [
        ins.args for ins in final_stage(instructions(DOCKERFILE)) if "useradd" in ins.args
    ]
    assert creates_user and f"--uid {uid}" in creates_user[0]


def test_the_image_runs_the_daemon_with_its_paths_and_endpoint() -> None:
    stage = final_stage(instructions(DOCKERFILE))
    by_keyword = {ins.keyword: ins.args for ins in stage}
    assert yaml.safe_load(by_keyword["ENTRYPOINT"]) == ["monitor"]
    assert yaml.safe_load(by_keyword["CMD"]) == ["run"]
    env = env_of(stage)
    assert env["MONITOR_RULES_DIR"] == RULES_DIR
    assert env["MONITOR_DATA_DIR"] == DATA_DIR
    assert env["MONITOR_HTTP_HOST"] == "0.0.0.0"
    assert env["MONITOR_HTTP_PORT"] == str(HTTP_PORT)
    assert by_keyword["EXPOSE"] == str(HTTP_PORT)
    assert by_keyword["WORKDIR"] == DATA_DIR


def test_the_image_checks_its_health_on_healthz() -> None:
    stage = final_stage(instructions(DOCKERFILE))
    (check,) = [ins.args for ins in stage if ins.keyword == "HEALTHCHECK"]
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    copied = {
        ins.args.split()[-1]: ins.args.split()[:-1]
        for ins in stage
        if ins.keyword == "COPY" and not ins.args.startswith("--from")
    }
    script = yaml.safe_load(command)[-1]
    assert copied[script] == [str(HEALTHCHECK.relative_to(ROOT))]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = which("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# --------------------------------------------------------------------------- .dockerignore


def _glob(path: str, pattern: str) -> bool:
    """Docker's pattern match for one path: ``*`` and ``?`` stay within a path segment,
    ``**`` crosses them, ``[...]`` is a character class."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.fullmatch(regex, path) is not None


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: the last matching pattern decides, and a
    pattern that matches a directory matches everything below it."""
    parts = path.split("/")
    verdict = False
    for line in patterns:
        negate = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        if any(_glob("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1)):
            verdict = not negate
    return verdict


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = dockerignore_patterns()
    sources = []
    for ins in instructions(DOCKERFILE):
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            sources += ins.args.split()[:-1]
    assert sources
    for source in sources:
        root = ROOT / source
        files = [root] if root.is_file() else [p for p in root.rglob("*.py")]
        assert files, source
        for file in files:
            relative = str(file.relative_to(ROOT))
            assert not ignored(relative, patterns), f"{relative} is left out of the context"


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "deploy/newsmonitor.env",
        ".venv/bin/python",
        ".git/HEAD",
        "data/monitor.db",
        "monitor/__pycache__/app.cpython-311.pyc",
        "tests/test_deploy.py",
    ],
)
def test_the_build_context_leaves_out_secrets_state_and_caches(path: str) -> None:
    assert ignored(path, dockerignore_patterns())


# --------------------------------------------------------------------------- health check


class Healthz(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"ok"
    paths: ClassVar[list[str]] = []  # each test's server gets its own list

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[tuple[int, type[Healthz]]]:
    handler = type("Handler", (Healthz,), {"paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def run_healthcheck(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_HTTP_")}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [(200, b"ok", 0), (503, b"redis: connection refused", 1), (500, b"boom", 1)],
)
def test_the_health_check_passes_only_on_200(
    healthz_server: tuple[int, type[Healthz]], status: int, body: bytes, code: int
) -> None:
    port, handler = healthz_server
    handler.status, handler.body = status, body
    result = run_healthcheck(MONITOR_HTTP_HOST="0.0.0.0", MONITOR_HTTP_PORT=str(port))
    assert result.returncode == code, result.stdout + result.stderr
    assert handler.paths == ["/healthz"]
    assert str(status) in result.stdout
    if code:
        assert body.decode() in result.stdout  # the reason reaches `docker inspect`


def test_the_health_check_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_healthcheck(MONITOR_HTTP_HOST="127.0.0.1", MONITOR_HTTP_PORT=str(port))
    assert result.returncode == 1
    assert "unreachable" in result.stdout


def test_the_health_check_passes_when_the_endpoint_is_turned_off() -> None:
    result = run_healthcheck(MONITOR_HTTP_PORT="0")
    assert result.returncode == 0
    assert "turned off" in result.stdout


# --------------------------------------------------------------------------- Compose


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def daemon_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items() if "build" in svc}


def compose_path(relative: str) -> Path:
    return (COMPOSE.parent / relative).resolve()


def test_compose_runs_redis_7_with_aof_on_a_volume() -> None:
    document = compose()
    redis = document["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    (volume,) = redis["volumes"]
    name, target = volume.split(":")
    assert target == "/data"
    assert name in document["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert redis["restart"] in ("always", "unless-stopped")
    assert "ports" not in redis


def test_compose_runs_the_image_with_rules_secrets_and_health() -> None:
    services = daemon_services()
    assert {"newsmonitor", "poll-process", "dispatch"} <= set(services)
    for name, svc in services.items():
        assert compose_path(svc["build"]["context"]) == ROOT, name
        assert compose_path(svc["build"]["context"]) / svc["build"]["dockerfile"] == DOCKERFILE
        mounts = [volume.split(":") for volume in svc["volumes"]]
        rules = [mount for mount in mounts if mount[1] == RULES_DIR]
        assert rules == [["../rules", RULES_DIR, "ro"]], name
        assert compose_path(rules[0][0]) == ROOT / "rules"
        assert svc["env_file"] == ["newsmonitor.env"]
        url = urlsplit(svc["environment"]["MONITOR_REDIS_URL"])
        assert url.hostname in compose()["services"]
        assert url.port == 6379
        assert svc["depends_on"][url.hostname]["condition"] == "service_healthy"
        assert str(HEALTHCHECK.name) in " ".join(svc["healthcheck"]["test"])
        assert svc["restart"] in ("always", "unless-stopped")
        assert int(svc["stop_grace_period"].removesuffix("s")) > DRAIN_S
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]


def test_compose_keeps_the_env_file_out_of_git() -> None:
    assert ENV_EXAMPLE.is_file()
    env_file = COMPOSE.parent / "newsmonitor.env"
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", str(env_file)], cwd=ROOT, check=False
    )
    assert result.returncode == 0, f"{env_file} is not ignored by git"


def test_compose_split_profile_runs_every_role_with_two_dispatchers() -> None:
    services = daemon_services()
    assert "profiles" not in services["newsmonitor"]
    assert roles_of(services["newsmonitor"]["command"]) == []  # all roles
    split = {name: svc for name, svc in services.items() if "split" in svc.get("profiles", [])}
    assert sorted(role for svc in split.values() for role in roles_of(svc["command"])) == sorted(
        ROLES
    )
    assert roles_of(split["dispatch"]["command"]) == ["dispatch"]
    assert split["dispatch"]["deploy"]["replicas"] >= 2
    assert roles_of(split["poll-process"]["command"]) == ["poll", "process"]
    assert split["poll-process"].get("deploy", {}).get("replicas", 1) == 1


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = which("docker")
    if subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode:
        pytest.skip("docker compose is not available")
    copy = tmp_path / "deploy"
    copy.mkdir()
    shutil.copy(COMPOSE, copy / COMPOSE.name)
    shutil.copy(ENV_EXAMPLE, copy / "newsmonitor.env")
    result = subprocess.run(
        [docker, "compose", "-f", str(copy / COMPOSE.name), "--profile", "split", "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_file_follows_the_compose_spec() -> None:
    checker = which("check-jsonschema")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- systemd


def unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as sections of (key, value) pairs; keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|min)?", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "min" else 1)


HARDENING = {
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "Restart": "on-failure",
}


@pytest.mark.parametrize("path", [UNIT, TEMPLATE], ids=lambda p: p.name)
def test_the_units_are_hardened_and_restart_on_failure(path: Path) -> None:
    service = unit(path)["Service"]
    for key, expected in HARDENING.items():
        assert values(service, key) == [expected], key
    assert seconds(values(service, "TimeoutStopSec")[0]) > DRAIN_S
    assert values(service, "Environment").count(f"MONITOR_RULES_DIR={RULES_DIR}") == 1
    assert unit(path)["Install"] == [("WantedBy", "multi-user.target")]


def test_the_unit_keeps_its_state_in_its_state_directory() -> None:
    service = unit(UNIT)["Service"]
    (state,) = values(service, "StateDirectory")
    assert f"MONITOR_DATA_DIR=/var/lib/{state}" in values(service, "Environment")
    assert values(service, "WorkingDirectory") == [f"/var/lib/{state}"]
    assert values(service, "EnvironmentFile") == ["-/etc/newsmonitor/env"]
    assert shlex.split(values(service, "ExecStart")[0]) == [INSTALLED_MONITOR, "run"]


def test_the_template_runs_one_role_per_instance_on_a_shared_redis() -> None:
    service = unit(TEMPLATE)["Service"]
    assert shlex.split(values(service, "ExecStart")[0]) == [
        INSTALLED_MONITOR,
        "run",
        "--role",
        "%i",
    ]
    # A Redis server is required (the embedded one is private to each instance), so the
    # env file that names it is not optional; per-role overrides (the /healthz port) are.
    assert values(service, "EnvironmentFile") == [
        "/etc/newsmonitor/env",
        "-/etc/newsmonitor/env.%i",
    ]
    assert values(service, "StateDirectory") == []
    assert values(service, "User") == ["newsmonitor"]  # one dynamic user for all instances


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """``systemd-analyze verify`` fails a unit whose ExecStart binary does not exist, and
    /opt/newsmonitor is not installed here. So the units are copied to a temporary directory
    with ExecStart pointing at this checkout's real ``monitor`` script, the only change, and
    the template is verified through one instance per role. Any warning about them fails."""
    analyze = which("systemd-analyze")
    monitor = Path(sys.executable).parent / "monitor"
    assert monitor.is_file(), "the project is installed in this venv"
    for source in (UNIT, TEMPLATE):
        text = source.read_text()
        assert INSTALLED_MONITOR in text
        (tmp_path / source.name).write_text(text.replace(INSTALLED_MONITOR, str(monitor)))
    names = [UNIT.name, *(f"newsmonitor@{role}.service" for role in ROLES)]
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in names)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert [line for line in output.splitlines() if "newsmonitor" in line] == []


# --------------------------------------------------------------------------- Kubernetes


def kustomization() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return document


def manifests() -> list[dict[str, Any]]:
    documents = []
    for name in kustomization()["resources"]:
        documents += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return documents


def resource(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def workloads() -> list[dict[str, Any]]:
    return [d for d in manifests() if d["kind"] in ("Deployment", "StatefulSet")]


def daemon_deployments() -> list[dict[str, Any]]:
    return [d for d in manifests() if d["kind"] == "Deployment"]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (found,) = workload["spec"]["template"]["spec"]["containers"]
    box: dict[str, Any] = found
    return box


def settings_data() -> dict[str, str]:
    data: dict[str, str] = resource("ConfigMap", "newsmonitor-settings")["data"]
    return data


def test_the_kustomization_lists_every_manifest() -> None:
    listed = kustomization()["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert all(doc.get("apiVersion") and doc.get("kind") for doc in manifests())


def test_dispatch_runs_several_replicas_and_poll_process_exactly_one() -> None:
    dispatch = resource("Deployment", "newsmonitor-dispatch")
    assert dispatch["spec"]["replicas"] >= 2
    assert roles_of(container(dispatch)["args"]) == ["dispatch"]
    single = resource("Deployment", "newsmonitor-poll-process")
    assert single["spec"]["replicas"] == 1
    assert single["spec"]["strategy"]["type"] == "Recreate"  # never two process workers
    assert roles_of(container(single)["args"]) == ["poll", "process"]
    everything = [role for d in daemon_deployments() for role in roles_of(container(d)["args"])]
    assert sorted(everything) == sorted(ROLES)
    budget = resource("PodDisruptionBudget", "newsmonitor-dispatch")
    assert budget["spec"]["selector"] == dispatch["spec"]["selector"]


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_every_pod_is_locked_down_with_resources_and_probes(workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    box = container(workload)
    security = box["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert box["resources"]["requests"]["memory"] and box["resources"]["limits"]["memory"]
    assert box["resources"]["requests"]["cpu"]
    assert {"livenessProbe", "readinessProbe"} <= set(box)
    assert workload["spec"]["selector"]["matchLabels"].items() <= (
        workload["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("deployment", daemon_deployments(), ids=lambda d: d["metadata"]["name"])
def test_newsmonitor_pods_probe_healthz_read_rules_and_secrets(deployment: dict[str, Any]) -> None:
    box = container(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        image_user()
    )
    ports = {port["name"]: port["containerPort"] for port in box["ports"]}
    assert ports == {"http": HTTP_PORT}
    assert settings_data()["MONITOR_HTTP_PORT"] == str(HTTP_PORT)
    assert settings_data()["MONITOR_HTTP_HOST"] == "0.0.0.0"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert box[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert int(pod["terminationGracePeriodSeconds"]) > DRAIN_S

    (rules_mount,) = [m for m in box["volumeMounts"] if m["mountPath"] == RULES_DIR]
    assert "subPath" not in rules_mount  # subPath mounts never see ConfigMap updates
    (volume,) = [v for v in pod["volumes"] if v["name"] == rules_mount["name"]]
    rules = resource("ConfigMap", volume["configMap"]["name"])
    assert settings_data()["MONITOR_RULES_DIR"] == RULES_DIR
    assert rules["data"]

    sources = box["envFrom"]
    assert [list(source) for source in sources] == [["configMapRef"], ["secretRef"]]  # Secret wins
    assert resource("ConfigMap", sources[0]["configMapRef"]["name"])
    assert resource("Secret", sources[1]["secretRef"]["name"])


def test_the_rules_configmap_is_valid_with_the_secret_it_needs(tmp_path: Path) -> None:
    rules = resource("ConfigMap", "newsmonitor-rules")["data"]
    secret = resource("Secret", "newsmonitor-secrets")["stringData"]
    for name, text in rules.items():
        (tmp_path / name).write_text(text)
    used = {var for text in rules.values() for var in re.findall(r"\$\{(\w+)\}", text)}
    assert used and used <= set(secret)
    config = load_config(tmp_path, env=secret)
    assert config.rules and config.channels and config.sources
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path, env={})
    assert {var for var in used if var in str(missing.value)} == used


def test_redis_keeps_an_aof_on_a_persistent_volume_behind_its_service() -> None:
    redis = resource("StatefulSet", "redis")
    box = container(redis)
    assert box["image"].startswith("redis:7")
    args = box["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in box["volumeMounts"]
    assert claim["spec"]["resources"]["requests"]["storage"]

    url = urlsplit(settings_data()["MONITOR_REDIS_URL"])
    assert url.scheme == "redis"
    service = resource("Service", str(url.hostname))
    labels = redis["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == url.port
    assert port["targetPort"] in [p["name"] for p in box["ports"]]
    headless = resource("Service", redis["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"

    policy = resource("NetworkPolicy", "redis")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    (allowed,) = policy["spec"]["ingress"][0]["from"]
    for deployment in daemon_deployments():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert allowed["podSelector"]["matchLabels"].items() <= pod_labels.items()


def test_kubectl_kustomize_builds_the_manifests() -> None:
    kubectl = which("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(built) == len(manifests())
    namespace = kustomization()["namespace"]
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
    (image,) = kustomization()["images"]
    for doc in built:
        if doc["kind"] == "Deployment":
            assert container(doc)["image"] == f"{image['newName']}:{image['newTag']}"


def test_the_manifests_follow_the_kubernetes_schemas() -> None:
    validate = which("kubernetes-validate")
    files = [str(K8S / name) for name in kustomization()["resources"]]
    result = subprocess.run(
        [validate, "--strict", "--quiet", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def until(condition: Callable[[], bool], within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


class ConfigMapVolume:
    """A directory laid out as the kubelet mounts a ConfigMap: each key is a symlink through
    ``..data``, which points at a hidden timestamped directory; an update writes a new such
    directory and renames a fresh symlink over ``..data`` (one atomic swap)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    def publish(self, data: dict[str, str]) -> None:
        self.generation += 1
        payload = self.root / f"..2026_11_22_20_00_{self.generation:02d}.{self.generation:09d}"
        payload.mkdir()
        for name, text in data.items():
            (payload / name).write_text(text)
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        (self.root / "..data_tmp").symlink_to(payload.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")
        for name in data:
            if not (self.root / name).is_symlink():
                (self.root / name).symlink_to(f"..data/{name}")
        if old is not None:
            shutil.rmtree(old)


def rule_ids(app: App) -> list[str]:
    return sorted(rule.id for rule in app.runtime.config.rules)


async def test_a_configmap_update_reaches_the_running_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.app.daemon")
    rules = tmp_path / "rules"
    rules.mkdir()
    volume = ConfigMapVolume(rules)
    volume.publish({"rules.yaml": "rules:\n  - {id: first, query: maduro}\n"})
    settings = Settings(data_dir=tmp_path / "data", rules_dir=rules, redis_url=None, http_port=0)
    app = App(settings, load_config(rules), roles=("process",), rules_dir=rules)
    assert rule_ids(app) == ["first"]  # the hidden copies are not read a second time
    task = asyncio.create_task(app.run())
    try:
        await until(lambda: "running roles=" in caplog.text)
        await asyncio.sleep(0.5)  # the watcher has taken its first look
        volume.publish(
            {"rules.yaml": "rules:\n  - {id: first, query: maduro}\n  - {id: second, query: x}\n"}
        )
        await until(lambda: rule_ids(app) == ["first", "second"])
        volume.publish({"rules.yaml": "rules:\n  - {id: third, query: lavrov}\n"})
        await until(lambda: rule_ids(app) == ["third"])
        assert "reload failed" not in caplog.text
    finally:
        app.stop()
        await asyncio.wait_for(task, 30)


# --------------------------------------------------------------------------- across files


def test_every_role_named_is_a_real_role() -> None:
    named: dict[str, set[str]] = {}
    for path in deploy_files():
        text = path.read_text()
        found = set(re.findall(r"--role[ =]([A-Za-z0-9_%-]+)", text))
        found |= set(re.findall(r"newsmonitor@(\w+)(?=\.service\b|[^\w.]|$)", text))
        if path.suffix in (".yml", ".yaml"):
            for document in yaml.safe_load_all(text):
                found |= set(_roles_in(document))
        named[str(path.relative_to(ROOT))] = found
    assert "%i" in named[str(TEMPLATE.relative_to(ROOT))]  # the instance name is the role
    for roles in named.values():
        roles.discard("%i")
    assert set().union(*named.values()) == set(ROLES)  # every role is shown somewhere
    for name, roles in named.items():
        assert roles <= set(ROLES), f"{name}: {sorted(roles - set(ROLES))}"


def _roles_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _roles_in(value)
    elif isinstance(node, list):
        if all(isinstance(item, str) for item in node):
            yield from roles_of(node)
        for item in node:
            yield from _roles_in(item)


def test_every_setting_named_is_a_real_setting() -> None:
    fields = set(Settings.model_fields)
    seen = set()
    for path in deploy_files():
        for name in re.findall(r"\bMONITOR_[A-Z0-9_]+", path.read_text()):
            seen.add(name)
            assert name.removeprefix("MONITOR_").lower() in fields, f"{path.name}: {name}"
    assert {"MONITOR_REDIS_URL", "MONITOR_HTTP_HOST", "MONITOR_RULES_DIR"} <= seen


def test_the_deploy_docs_describe_every_file() -> None:
    docs = DOCS.read_text()
    for path in deploy_files():
        if path in (DOCS, DEPLOY / ".gitignore"):
            continue
        assert path.name in docs, f"docs/deploy.md does not mention {path.name}"
