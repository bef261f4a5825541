"""The shipped deployment files trust only the gateway's X-Forwarded-* headers."""

import json
from pathlib import Path
from typing import Any

import yaml

from app.core.config import Settings

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
