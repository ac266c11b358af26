"""The deploy files agree with the code: ports, probes, environment names, secrets, the
commands they run, the user they run as. (Docker and Kubernetes cannot run here; these
checks catch the drift that would break them.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import cli, settings
from gateway.app import all_endpoints
from gateway.http.handlers import delivery
from gateway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS_SOURCE = Path(settings.__file__).read_text()
KNOWN_ENV = set(re.findall(r'"(GATEWAY_[A-Z_]+)"', SETTINGS_SOURCE)) | {"DATABASE_URL"}
ROUTES = {(ep.method, ep.path) for ep in all_endpoints()}
DEFAULTS = Settings()


def _k8s() -> dict[tuple[str, str], dict[str, Any]]:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def _parses(args: list[str]) -> None:
    """The arguments are a valid gateway command line (argparse exits otherwise)."""
    cli.build_parser().parse_args(args)


def test_the_image_runs_unprivileged_with_a_health_check_on_the_served_port() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", text, re.MULTILINE)
    assert user is not None and user.group(1).split(":")[0] not in ("root", "0")
    assert re.search(rf"^EXPOSE {DEFAULTS.port}$", text, re.MULTILINE)
    assert f"GATEWAY_PORT={DEFAULTS.port}" in text
    health = re.search(r"^HEALTHCHECK .*?CMD (.*)$", text, re.MULTILINE | re.DOTALL)
    assert health is not None and f"127.0.0.1:{DEFAULTS.port}/healthz" in health.group(1)
    assert ("GET", "/healthz") in ROUTES
    for name in re.findall(r"(GATEWAY_[A-Z_]+)=", text):
        assert name in KNOWN_ENV, name
    for package in re.findall(r"^COPY (\w+) \./\1$", text, re.MULTILINE):
        assert (DEPLOY.parent / package / "__init__.py").exists(), package
    assert 'ENTRYPOINT ["gateway"]' in text and 'CMD ["serve"]' in text
    _parses(["serve"])


def test_compose_runs_replicas_behind_nginx_after_migrating() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["gateway"]["deploy"]["replicas"] >= 3
    assert services["gateway"]["expose"] == [str(DEFAULTS.port)]
    assert services["migrate"]["command"] == ["migrate"]
    _parses(services["migrate"]["command"])
    _parses(services["gateway"]["command"])
    assert services["gateway"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name in services["gateway"]["environment"]:
        assert name in KNOWN_ENV, name
    mount = services["nginx"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mount).resolve() == (DEPLOY / "nginx.conf").resolve()
    assert (
        services["postgres"]["environment"]["POSTGRES_DB"]
        in (services["gateway"]["environment"]["DATABASE_URL"])
    )


def test_nginx_proxies_to_the_gateway_port_and_streams_the_inbox() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    assert re.search(rf"server gateway:{DEFAULTS.port}\b", conf)
    stream = next(ep for ep in delivery.ENDPOINTS if ep.path.endswith("/stream"))
    block = re.search(r"location = " + re.escape(stream.path) + r" \{(.*?)\}", conf, re.DOTALL)
    assert block is not None and "proxy_buffering off;" in block.group(1)
    size = re.search(r"client_max_body_size (\d+)m;", conf)
    assert size is not None and int(size.group(1)) * 1024 * 1024 >= DEFAULTS.max_import_bytes
    assert "X-Request-Id" in conf


def test_kubernetes_probes_ports_env_and_secrets_agree_with_the_code() -> None:
    docs = _k8s()
    dep = docs[("Deployment", "geo-offer-gateway")]
    pod = dep["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": DEFAULTS.port}
    probes = {k: container[k]["httpGet"] for k in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert ("GET", probe["path"]) in ROUTES and probe["port"] in ports
    _parses(container["args"])
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= KNOWN_ENV
    assert env["GATEWAY_PORT"]["value"] == str(DEFAULTS.port)
    assert env["GATEWAY_HOST"]["value"] == "0.0.0.0"

    secrets = {name: doc for (kind, name), doc in docs.items() if kind == "Secret"}
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for doc in docs.values()
        if doc["kind"] in ("Deployment", "Job")
        for c in doc["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if "valueFrom" in e
    ]
    assert {r["name"] for r in refs} >= {"gateway-database", "gateway-vapid"}
    for ref in refs:
        assert ref["key"] in secrets[ref["name"]]["stringData"], ref

    labels = pod["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"] == labels
    service = docs[("Service", "geo-offer-gateway")]
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"][0]["targetPort"] in ports
    hpa = docs[("HorizontalPodAutoscaler", "geo-offer-gateway")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "geo-offer-gateway",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = docs[("PodDisruptionBudget", "geo-offer-gateway")]
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    image_user = re.search(r"^USER (\d+)", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert image_user is not None
    assert pod["spec"]["securityContext"]["runAsUser"] == int(image_user.group(1))


def test_the_data_dir_with_the_ping_spool_is_a_writable_volume() -> None:
    """GATEWAY_DATA_DIR holds the ping spool: on a read-only root it must be a volume,
    in Kubernetes one that outlives the container (an emptyDir), and in Compose one
    the replicas share, so a survivor or a restarted container replays a dead one's."""
    data_dir = re.search(r"GATEWAY_DATA_DIR=(\S+)", (DEPLOY / "Dockerfile").read_text())
    assert data_dir is not None
    path = data_dir.group(1)
    dep = _k8s()[("Deployment", "geo-offer-gateway")]
    spec = dep["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts[path]]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    gateway = compose["services"]["gateway"]
    named = [v.split(":")[0] for v in gateway["volumes"] if v.split(":")[1] == path]
    assert named and named[0] in compose["volumes"]
    assert gateway["deploy"]["replicas"] > 1


@pytest.mark.parametrize(
    ("job", "command"),
    [("geo-offer-gateway-migrate", "migrate"), ("geo-offer-gateway-wallet-configure", "wallet")],
)
def test_kubernetes_jobs_run_real_commands_with_mounted_secrets(job: str, command: str) -> None:
    docs = _k8s()
    spec = docs[("Job", job)]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"][0] == command
    _parses(container["args"])
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    wallet = docs[("Secret", "gateway-wallet")]["stringData"]
    for volume in spec.get("volumes", []):
        assert volume["secret"]["secretName"] == "gateway-wallet"
        # Every file the command reads is a key of the mounted secret.
        for arg in container["args"]:
            if "=" in arg and arg.split("=", 1)[1].startswith(mounts[volume["name"]]):
                assert Path(arg.split("=", 1)[1]).name in wallet, arg


def test_the_scaling_guide_names_real_tables() -> None:
    guide = (DEPLOY / "SCALING.md").read_text()
    migrations = "".join(
        p.read_text() for p in (DEPLOY.parent / "gateway" / "migrations").glob("*.sql")
    )
    tables = set(re.findall(r"CREATE TABLE (\w+)", migrations)) | {"schema_migrations"}
    named = set(re.findall(r"`([a-z_]+)`", guide))
    mentioned = {t for t in named if "_" in t or t in tables}
    unknown = {
        t for t in mentioned - tables
        if not t.startswith(("gateway_", "pg_")) and not t.isupper()
    }  # fmt: skip
    columns = {"merchant_id", "shopper_id", "received_at", "decided_at", "created_at",
               "redeemed_at", "idempotency_key", "api_keys_invalidated", "geofences_changed",
               "shopper_geo_changed", "offers_changed", "client_id", "delivery_id",
               "coupon_id", "lock_timeout", "shopper_offer_state"}  # fmt: skip
    assert unknown <= columns, unknown - columns
    assert tables - {"schema_migrations", "vapid_keys", "merchants"} <= named
