"""Clients generated from the served OpenAPI document are typed per execution type.

The Python client (openapi-python-client, checked with mypy) and the TypeScript types
(openapi-typescript from npm, checked with tsc) are generated into a temporary directory, never
committed: a short use of each built-in type (tests/sdk/usage_ok.*) must type-check, and a
wrong field in catalog-enrichment's input (tests/sdk/usage_wrong.*) must not.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

USAGE = Path(__file__).resolve().parent / "sdk"
BIN = Path(sys.executable).parent
# Exact versions: a new release must not change what CI checks unannounced.
NPM_PACKAGES = ("openapi-typescript@7.13.0", "typescript@5.9.3")
NPM = shutil.which("npm")
TOOL_TIMEOUT = 180


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def document(app: FastAPI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sdk") / "openapi.json"
    path.write_text(json.dumps(app.openapi()))
    return path


def test_the_document_is_valid_openapi_3_1(app: FastAPI) -> None:
    schema: Any = app.openapi()

    validate(schema)

    assert schema["openapi"].startswith("3.1")


@pytest.fixture(scope="module")
def python_client(document: Path) -> Path:
    out = document.parent / "python"
    generated = run(
        BIN / "openapi-python-client",
        "generate",
        "--path",
        document,
        "--output-path",
        out / "agentrun_client",
        "--meta",
        "none",
        cwd=document.parent,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return out


def mypy(client: Path, usage: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(USAGE / usage, client / usage)
    return run(
        sys.executable,
        "-m",
        "mypy",
        "--config-file=",
        "--cache-dir",
        client / ".mypy_cache",
        "--no-error-summary",
        usage,
        cwd=client,
    )


def test_the_python_client_types_each_built_in_types_input_and_result(python_client: Path) -> None:
    checked = mypy(python_client, "usage_ok.py")

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_wrong_field_in_catalog_enrichments_input_is_a_python_type_error(
    python_client: Path,
) -> None:
    checked = mypy(python_client, "usage_wrong.py")

    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert 'Unexpected keyword argument "skuz" for "CatalogEnrichmentAgenticExecutionInput"' in (
        checked.stdout
    )


@pytest.fixture(scope="module")
def typescript_types(document: Path) -> Path:
    if NPM is None:
        if os.environ.get("CI"):
            pytest.fail("npm is missing: .ci/run installs Node.js for this check")
        pytest.skip("npm is not installed (apt-get install nodejs npm)")
    out = document.parent / "typescript"
    out.mkdir()
    installed = run(
        NPM, "install", "--no-audit", "--no-fund", "--silent", "--prefix", out, *NPM_PACKAGES,
        cwd=out,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # Fields with a default are optional in a request, as the API treats them.
    generated = run(
        out / "node_modules/.bin/openapi-typescript", document, "--default-non-nullable=false",
        "-o", out / "schema.d.ts",
        cwd=out,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return out


def tsc(types: Path, usage: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(USAGE / usage, types / usage)
    return run(
        types / "node_modules/.bin/tsc", "--noEmit", "--strict", "--target", "es2020",
        "--module", "es2020", "--moduleResolution", "node", usage,
        cwd=types,
    )  # fmt: skip


def test_the_typescript_types_type_each_built_in_types_input_and_result(
    typescript_types: Path,
) -> None:
    checked = tsc(typescript_types, "usage_ok.ts")

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_wrong_field_in_catalog_enrichments_input_is_a_typescript_type_error(
    typescript_types: Path,
) -> None:
    checked = tsc(typescript_types, "usage_wrong.ts")

    assert checked.returncode != 0
    assert "'skuz' does not exist in type" in checked.stdout, checked.stdout
