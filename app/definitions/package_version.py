"""The version of the installed distribution a module comes from (a definition's default
``version``)."""

from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version

# A module outside any installed distribution (a test's, a script's).
UNPACKAGED = "0"


@lru_cache
def installed_distributions() -> Mapping[str, list[str]]:
    return packages_distributions()


def package_version_of(module: str) -> str:
    top_level = module.split(".", 1)[0]
    for distribution in installed_distributions().get(top_level, []):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return UNPACKAGED
