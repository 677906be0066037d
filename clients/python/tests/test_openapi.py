"""The dispatcher's OpenAPI document, as served by the dispatcher under test: it validates, a generic
generator (openapi-python-client) produces every operation from it, and the committed models match it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

import training_dispatcher
from conftest import PACKAGE, Dispatcher

sys.path.insert(0, str(PACKAGE / "scripts"))
from generate_models import MODELS, generate

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def document(dispatcher: Dispatcher) -> dict[str, Any]:
    response = httpx.get(f"{dispatcher.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_openapi_python_client_generates_every_operation(document: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "openapi.json"
    source.write_text(httpx.Response(200, json=document).text)
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", f"--path={source}", f"--output-path={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unable to" not in result.stdout + result.stderr, result.stdout + result.stderr
    generated = {path.stem for path in (tmp_path / "out").rglob("api/**/*.py") if path.stem != "__init__"}
    expected = {
        re.sub(r"[^a-z0-9]+", "_", re.sub(r"(?<!^)(?=[A-Z])", "_", op["operationId"]).lower())
        for _, _, op in operations(document)
    }
    assert len(generated) == len(operations(document))
    assert expected <= generated


def test_every_operation_has_an_operation_id(document: dict[str, Any]) -> None:
    missing = [f"{method.upper()} {path}" for method, path, operation in operations(document) if "operationId" not in operation]
    assert missing == []


def test_the_committed_models_match_the_dispatchers_document(document: dict[str, Any]) -> None:
    assert generate(document) == MODELS.read_text(), "models.py drifted: run scripts/generate_models.py"


def test_the_package_major_version_is_the_api_version(document: dict[str, Any]) -> None:
    assert training_dispatcher.__version__.split(".")[0] == str(document["info"]["version"]).split(".")[0]
