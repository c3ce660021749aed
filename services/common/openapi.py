"""Named schemas an OpenAPI document needs that FastAPI does not see: the request bodies a route
reads itself (services/registry/entrypoints/bodies.py), and response bodies that are not JSON
(a signed note)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import Components
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def add_schemas(app: FastAPI, models: Iterable[type[BaseModel]]) -> None:
    """Puts `models` (and the models they use) in the document's components, as FastAPI writes
    them for a body it reads (validation mode)."""
    wanted = list(models)
    original = app.openapi

    def openapi() -> dict[str, Any]:
        document = original()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if not all(model.__name__ in schemas for model in wanted):
            _, defs = models_json_schema([(model, "validation") for model in wanted], ref_template=REF)
            # Written as FastAPI writes its own (through its OpenAPI models, no null members).
            components = Components.model_validate({"schemas": defs.get("$defs", {})})
            for name, schema in jsonable_encoder(components, by_alias=True, exclude_none=True)[
                "schemas"
            ].items():
                schemas.setdefault(name, schema)
            document["components"]["schemas"] = dict(sorted(schemas.items()))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
