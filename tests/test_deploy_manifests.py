"""Every manifest under deploy/ names only things threadline has: commands and flags the CLI
parses, ports the command listens on, probe paths the app routes, environment variables the
settings read, the Redis keys and consumer group the event log uses, and the metric names
/metrics exports. Checked against the code as it is at run time, so a renamed setting or a
removed subcommand breaks this test rather than a deployment."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from service.app import create_app
from service.cli.main import build_parser
from service.views.metrics import RedisStatsCollector
from tests.conftest import ROOT
from workers.capture.configuration import load_file, parse_configurations
from workers.foundations import keys
from workers.foundations.settings import Settings

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SETTINGS_ENV = {f.validation_alias for f in Settings.model_fields.values() if isinstance(f.validation_alias, str)}


def _yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml")) for d in _yaml_docs(p)]


def _routes() -> set[str]:
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    return {r.path for r in app.routes}


def _parses(argv: list[str]) -> str:
    """The subcommand, after the CLI's own parser accepted every flag (SystemExit otherwise)."""
    assert argv[0] == "threadline", argv
    try:
        return build_parser().parse_args(argv[1:]).command
    except SystemExit:
        pytest.fail(f"threadline does not accept: {' '.join(argv)}")


def _port_of(argv: list[str]) -> int | None:
    return int(argv[argv.index("--port") + 1]) if "--port" in argv else None


def test_every_manifest_parses() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json")]
    assert len(files) >= 9
    for p in files:
        assert (json.loads(p.read_text()) if p.suffix == ".json" else _yaml_docs(p)), p


def test_kubernetes_containers_commands_ports_probes_env() -> None:
    routes = _routes()
    docs = _k8s()
    config_data = {d["metadata"]["name"]: d["data"] for _, d in docs if d["kind"] == "ConfigMap"}
    secret = _yaml_docs(K8S / "secret.example.yaml")[0]["stringData"]
    commands = set()
    for name, d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            argv = [*c.get("command", []), *c.get("args", [])]
            commands.add(_parses(argv))
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if (port := _port_of(argv)) is not None:
                assert port in ports.values(), f"{name}: listens on {port}, declares {ports}"
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in c:
                    http = c[probe]["httpGet"]
                    assert http["path"] in routes, f"{name}: {probe} path {http['path']}"
                    assert ports.get(http["port"], http["port"]) == _port_of(argv)
            for env in c.get("env", []):
                assert env["name"] in SETTINGS_ENV, f"{name}: {env['name']} is no threadline setting"
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in config_data[ref["configMapKeyRef"]["name"]]
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secret
    assert commands == {"web", "worker", "scheduler"}
    assert set(config_data["threadline-settings"]) <= SETTINGS_ENV
    web = next(d for _, d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "threadline-web")
    probes = web["spec"]["template"]["spec"]["containers"][0]
    assert (probes["livenessProbe"]["httpGet"]["path"], probes["readinessProbe"]["httpGet"]["path"]) == ("/healthz", "/readyz")
    svc = next(d for _, d in docs
               if d["kind"] == "Service" and d["metadata"]["name"] == "threadline-web")
    assert svc["spec"]["ports"][0]["targetPort"] in {p["name"] for p in probes["ports"]}
    hpa = next(d for _, d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "threadline-web"
    # Every key the Secret holds is a setting, or a KEDA credential the TriggerAuthentication reads.
    auth = next(d for _, d in docs if d["kind"] == "TriggerAuthentication")
    keda_keys = {t["key"] for t in auth["spec"]["secretTargetRef"]}
    assert set(secret) <= SETTINGS_ENV | keda_keys


def test_keda_scales_workers_on_every_shard_of_the_event_log(redis_client) -> None:
    from rq import Queue

    docs = _k8s()
    settings_cm = next(d for _, d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "threadline-settings")
    shards = int(settings_cm["data"]["THREADLINE_SHARDS"])
    so = next(d for _, d in docs if d["kind"] == "ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == "threadline-worker"
    streams = [t["metadata"] for t in so["spec"]["triggers"] if t["type"] == "redis-streams"]
    assert sorted(m["stream"] for m in streams) == sorted(keys.events(n) for n in range(shards))
    assert {m["consumerGroup"] for m in streams} == {keys.CONSUMER_GROUP}
    assert all(int(m["pendingEntriesCount"]) > 0 for m in streams)
    (rq_list,) = [t["metadata"] for t in so["spec"]["triggers"] if t["type"] == "redis"]
    assert rq_list["listName"] == Queue(keys.QUEUE, connection=redis_client).key
    assert so["spec"]["maxReplicaCount"] == shards


def test_keda_scales_workers_on_overdue_lifecycle_timers(redis_client) -> None:
    """Lifecycle timers are claimed by the workers, not queued: a Prometheus trigger on the
    gauge of overdue timers (one /metrics exports) scales the workers when transitions wait."""
    from workers.lifecycle.applier import INFLIGHT

    exported = _exported(redis_client)
    so = next(d for _, d in _k8s() if d["kind"] == "ScaledObject")
    (prom,) = [t["metadata"] for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
    names = re.findall(r"\bthreadline_[a-z0-9_]+", prom["query"])
    assert names == ["threadline_lifecycle_timers_overdue"] and names[0] in exported
    assert int(prom["threshold"]) == INFLIGHT  # one worker's worth of transitions at once
    assert prom["serverAddress"].startswith("http")


def test_compose_services() -> None:
    routes = _routes()
    compose = _yaml_docs(DEPLOY / "docker-compose.yml")[0]
    services = compose["services"]
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--appendfsync everysec" in redis_cmd
    assert (DEPLOY / compose["x-threadline"]["build"]["context"] / compose["x-threadline"]["build"]["dockerfile"]).is_file()
    seen = {}
    for name, svc in services.items():
        if name == "redis":
            continue
        argv = svc["command"]
        seen[name] = _parses(argv)
        for key in svc.get("environment", {}):
            assert key in SETTINGS_ENV, f"{name}: {key}"
        port = _port_of(argv)
        for mapping in svc.get("ports", []):
            assert int(str(mapping).rsplit(":", 1)[1]) == port, f"{name}: {mapping} vs --port {port}"
        test = " ".join(svc["healthcheck"]["test"])
        for url in re.findall(r"https?://[^'\" ]+", test):
            parts = urlsplit(url)
            assert parts.path in routes and parts.port == port, f"{name}: healthcheck {url}"
        for vol in svc.get("volumes", []):
            if "configurations" in vol:
                assert vol.rsplit(":", 2)[1] == svc.get("environment", compose["x-threadline"]["environment"]).get(
                    "THREADLINE_CONFIG", compose["x-threadline"]["environment"]["THREADLINE_CONFIG"])
    assert seen == {"web": "web", "worker": "worker", "scheduler": "scheduler", "twin": "twin"}
    assert services["worker"]["deploy"]["replicas"] == 2 and services["twin"]["profiles"] == ["twin"]
    env_example = [line.split("=", 1)[0] for line in (DEPLOY / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#")]
    assert set(env_example) <= SETTINGS_ENV


def test_procfile_commands_parse() -> None:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if ":" in line:
            argv = shlex.split(re.sub(r"\$\{PORT:-(\d+)\}", r"\1", line.split(":", 1)[1]))
            _parses(argv)


def test_configuration_files_are_valid() -> None:
    assert load_file(DEPLOY / "configurations.example.yaml")
    cm = next(d for _, d in _k8s() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "threadline-configurations")
    assert parse_configurations(yaml.safe_load(cm["data"]["configurations.yaml"]))


def _exported(redis_client) -> dict[str, set[str]]:
    """Sample name → label names, for every family /metrics exports."""
    out: dict[str, set[str]] = {}
    for fam in RedisStatsCollector(redis_client, Settings(shards=2)).collect():
        label_names = set(fam._labelnames) if hasattr(fam, "_labelnames") else set()
        if fam.type == "counter":
            out[fam.name + "_total"] = label_names
        elif fam.type == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[fam.name + suffix] = label_names | ({"le"} if suffix == "_bucket" else set())
        else:
            out[fam.name] = label_names
    return out


def test_grafana_and_prometheus_use_only_exported_metrics(redis_client) -> None:
    exported = _exported(redis_client)
    dash = json.loads((DEPLOY / "grafana" / "threadline.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    for expr in exprs:
        names = re.findall(r"\bthreadline_[a-z0-9_]+", expr)
        assert names, expr
        labels = set()
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels |= {x.strip() for x in group.split(",")}
        labels |= set(re.findall(r"[{,]\s*([a-z_]+)\s*[!=]~?", expr))
        for name in names:
            assert name in exported, f"{name} is not exported by /metrics"
            assert labels <= exported[name] | {"le"}, f"{expr}: labels {labels - exported[name]}"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["metrics_path"] in _routes()


# --- acknowledgement durability: the manifests ask for it, and their Redis gives it -------------

def _compose_durability() -> str:
    env = _yaml_docs(DEPLOY / "docker-compose.yml")[0]["x-threadline"]["environment"]
    value = str(env["THREADLINE_ACK_DURABILITY"])
    match = re.fullmatch(r"\$\{THREADLINE_ACK_DURABILITY:-(\w+)\}", value)
    return match.group(1) if match else value


def _k8s_redis_args() -> list[str]:
    (sts,) = [d for _, d in _k8s() if d["kind"] == "StatefulSet"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return [*container.get("command", []), *container.get("args", [])]


def test_the_manifests_acknowledge_durably_with_a_redis_configured_for_it() -> None:
    durable = {"local", "replica"}
    assert _compose_durability() in durable
    compose = _yaml_docs(DEPLOY / "docker-compose.yml")[0]["services"]
    redis_cmd = " ".join(compose["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd
    docs = _k8s()
    settings_cm = next(d for _, d in docs
                       if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "threadline-settings")
    assert settings_cm["data"]["THREADLINE_ACK_DURABILITY"] in durable
    Settings(ack_durability=settings_cm["data"]["THREADLINE_ACK_DURABILITY"])  # a valid value
    web = next(d for _, d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "threadline-web")
    names = {e["name"] for e in web["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "THREADLINE_ACK_DURABILITY" in names
    args = " ".join(_k8s_redis_args())
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args
    # the Secret's REDIS_URL names the Redis Service, and the password it holds is the one Redis requires
    secret = _yaml_docs(K8S / "secret.example.yaml")[0]["stringData"]
    svc = next(d for _, d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "redis")
    url = urlsplit(secret["REDIS_URL"])
    assert url.hostname.split(".")[0] == svc["metadata"]["name"] and url.port == svc["spec"]["ports"][0]["port"]
    assert url.password == secret["redis-password"] and "--requirepass $(REDIS_PASSWORD)" in args
    kustomization = _yaml_docs(K8S / "kustomization.yaml")[0]
    assert "redis.yaml" in kustomization["resources"]


def _server_args(argv: list[str]) -> list[str]:
    """A manifest's Redis command line, minus the binary and what a test server sets itself."""
    out, skip = [], {"--dir", "--requirepass", "--maxmemory"}
    args = argv[1:]
    i = 0
    while i < len(args):
        if args[i] in skip:
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


@pytest.mark.parametrize("manifest", ["docker-compose.yml", "kubernetes/redis.yaml"])
def test_the_manifests_redis_gives_their_durability(manifest, start_valkey) -> None:
    """The Redis command line of each manifest, run for real (Valkey): threadline's start-up
    check accepts it for the durability the manifests set, with no warning."""
    import asyncio

    import redis.asyncio as aioredis

    from service.webhooks import durability

    argv = (_yaml_docs(DEPLOY / "docker-compose.yml")[0]["services"]["redis"]["command"]
            if manifest == "docker-compose.yml" else _k8s_redis_args())
    server = start_valkey(*_server_args(argv))
    settings = Settings(ack_durability=_compose_durability(), redis_url=server.url)

    async def check():
        client = aioredis.Redis(port=server.port)
        try:
            return await durability.inspect(client)
        finally:
            await client.aclose()

    facts = asyncio.run(check())
    assert facts.aof and facts.maxmemory_policy == "noeviction" and facts.waitaof
    assert durability.refusals(settings, facts) == []
    assert durability.warnings(settings, facts) == []
