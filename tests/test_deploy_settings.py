"""The shipped deployment files trust only the gateway's X-Forwarded-* headers."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings
from app.core.metrics import EXECUTIONS_PENDING

ROOT = Path(__file__).resolve().parent.parent


def _load(path: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((ROOT / path).read_text()) if doc]


def _trusted_proxies(environment: dict[str, Any]) -> list[str]:
    entries = json.loads(environment["AGENTRUN_TRUSTED_PROXIES"])
    # Valid for the service, as it would read them at startup.
    Settings(trusted_proxies=entries, _env_file=None)  # type: ignore[call-arg]
    return list(entries)


def test_the_kubernetes_manifests_trust_the_gateways_network_and_let_only_it_connect() -> None:
    [configmap] = _load("deploy/configmap.yaml")
    [policy] = _load("deploy/networkpolicy.yaml")
    [deployment, _service] = _load("deploy/api.yaml")
    kustomization = _load("deploy/kustomization.yaml")[0]

    assert "*" not in _trusted_proxies(configmap["data"])
    assert "networkpolicy.yaml" in kustomization["resources"]
    api_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= api_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [source for rule in policy["spec"]["ingress"] for source in rule["from"]]
    # Only named namespaces: no rule open to every peer.
    assert sources
    assert all("namespaceSelector" in source for source in sources)


def test_compose_trusts_no_forwarding_proxy() -> None:
    [compose] = _load("compose.yaml")

    environment = compose["services"]["api"]["environment"]
    assert _trusted_proxies(environment) == ["127.0.0.1", "::1"]


def _adapter_rules() -> list[dict[str, Any]]:
    """The prometheus-adapter rules deploy/README.md tells the operator to install."""
    readme = (ROOT / "deploy/README.md").read_text()
    section = readme[readme.index("## Workers on the backlog") :]
    block = section[section.index("```yaml") + len("```yaml") : section.index("```\n")]
    rules: list[dict[str, Any]] = yaml.safe_load(block)["rules"]["external"]
    return rules


def test_the_workers_scale_on_the_pending_executions_the_api_serves() -> None:
    # With fair share the backlog waits in PostgreSQL: the queue's depth stays near 0.
    [_deployment, autoscaler] = _load("deploy/worker.yaml")
    [rule] = _adapter_rules()

    [backlog] = [m for m in autoscaler["spec"]["metrics"] if m["type"] == "External"]
    assert backlog["external"]["metric"]["name"] == EXECUTIONS_PENDING._name
    assert rule["seriesQuery"] == EXECUTIONS_PENDING._name
    assert rule["name"]["as"] == EXECUTIONS_PENDING._name
    # Each API pod reports the whole count: the max over the pods, summed over the gauge's
    # labels (all of them: the HPA reads one number).
    assert EXECUTIONS_PENDING._labelnames == ("priority",)
    assert rule["metricsQuery"] == "sum(max by (priority) (<<.Series>>{<<.LabelMatchers>>}))"


def test_the_pgbouncer_piece_pools_transactions_the_service_can_run_through() -> None:
    [config, _deployment, service] = _load("deploy/pgbouncer.yaml")
    [configmap] = _load("deploy/configmap.yaml")

    ini = config["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini
    # asyncpg sends statement_timeout at connection start unless it is 0; PgBouncer refuses
    # startup parameters it is not told to ignore.
    assert "statement_timeout" in ini
    assert service["spec"]["ports"][0]["port"] == 6432
    # The setting the service needs behind it exists under the name the ConfigMap uses.
    name = "AGENTRUN_DATABASE_PREPARED_STATEMENTS"
    assert name in configmap["data"]
    assert "database_prepared_statements" in Settings.model_fields
    # The listener's direct URL (it LISTENs, which transaction mode cannot carry): named where
    # the PgBouncer piece says what to set, read by the service under that name.
    listen_url = "postgresql+asyncpg://agentrun:x@postgres:5432/agentrun"
    assert "AGENTRUN_DATABASE_LISTEN_URL" in (ROOT / "deploy/pgbouncer.yaml").read_text()
    assert "AGENTRUN_DATABASE_LISTEN_URL" in (ROOT / "deploy/secret.example.yaml").read_text()
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("AGENTRUN_DATABASE_LISTEN_URL", listen_url)
        assert Settings(_env_file=None).listen_url == listen_url  # type: ignore[call-arg]


def _container_ports(deployment: dict[str, Any]) -> dict[str, int]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def test_metrics_are_scraped_on_the_operator_port_the_gateway_cannot_reach() -> None:
    [configmap] = _load("deploy/configmap.yaml")
    [policy] = _load("deploy/networkpolicy.yaml")
    [api, service] = _load("deploy/api.yaml")
    [worker, _autoscaler] = _load("deploy/worker.yaml")
    settings = Settings(  # type: ignore[call-arg]
        metrics_port=configmap["data"]["AGENTRUN_METRICS_PORT"], _env_file=None
    )

    assert not settings.metrics_on_api_port
    assert "AGENTRUN_METRICS_ON_API_PORT" not in configmap["data"]
    for deployment in (api, worker):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == settings.metrics_port
        assert annotations["prometheus.io/path"] == "/metrics"
        assert _container_ports(deployment)["metrics"] == settings.metrics_port
    # The Service (what the gateway routes to) holds the public port only.
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    # The ingress controller reaches the public port only; Prometheus the operator port.
    allowed = {
        source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: [
            port["port"] for port in rule["ports"]
        ]
        for rule in policy["spec"]["ingress"]
        for source in rule["from"]
    }
    assert allowed == {"ingress-nginx": ["http"], "monitoring": ["metrics"]}


def test_compose_publishes_the_public_port_only() -> None:
    [compose] = _load("compose.yaml")

    api = compose["services"]["api"]
    published = [str(mapping).split(":")[-1] for mapping in api.get("ports", [])]
    assert published == ["8000"]
    assert "ports" not in compose["services"]["worker"]
    environment = api["environment"]
    assert environment.get("AGENTRUN_METRICS_ON_API_PORT") in (None, "false")
    assert str(Settings(_env_file=None).metrics_port) not in published  # type: ignore[call-arg]
