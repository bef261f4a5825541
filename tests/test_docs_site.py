"""The documentation site (mkdocs.yml, docs/) says what the code has: every setting in the
configuration page's table, every metric on the metrics page; and README's links lead to
files that exist. (`make docs` builds the site with --strict: broken links between pages,
and pages missing from the nav, fail there.)"""

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase
from pydantic import AliasChoices

from app.core import metrics
from app.core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _table_names(page: Path) -> set[str]:
    """The backticked names in the first cell of each table row of ``page``."""
    names: set[str] = set()
    for line in page.read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def _environment_names(field: str) -> list[str]:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"{Settings.model_config.get('env_prefix', '')}{field}".upper()]


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = _table_names(DOCS / "configuration.md")

    missing = [
        _environment_names(field)[0]
        for field in Settings.model_fields
        if not documented.intersection(_environment_names(field))
    ]

    assert missing == [], f"settings missing from docs/configuration.md: {missing}"


def test_the_configuration_table_names_no_setting_that_does_not_exist() -> None:
    known = {name for field in Settings.model_fields for name in _environment_names(field)}

    unknown = sorted(name for name in _table_names(DOCS / "configuration.md") if name not in known)

    assert unknown == [], f"docs/configuration.md documents unknown settings: {unknown}"


def test_every_metric_is_on_the_metrics_page() -> None:
    documented = _table_names(DOCS / "metrics.md")
    defined = [
        family.name + ("_total" if family.type == "counter" else "")
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    ]

    assert defined, "app.core.metrics defines no metric: the check would prove nothing"
    assert sorted(set(defined) - documented) == []
    assert sorted(documented - set(defined)) == []


def test_the_readme_links_to_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [link for link in links if "://" not in link]

    assert "docs/index.md" in local
    assert [link for link in local if not (ROOT / link).exists()] == []
