"""``GET /api/v1/openapi.json``: the API's OpenAPI document (from openapi.yaml).

Served without a token: it describes the API, it grants nothing. A test
(tests/web/test_openapi.py) drives every operation it lists with generated
requests and checks each answer against it, so it cannot drift from the code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from ruamel.yaml import YAML

from app.web.api import blueprint

SPEC = Path(__file__).with_name("openapi.yaml")


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(SPEC.read_text(encoding="utf-8"))
    return loaded


@blueprint.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(document())
