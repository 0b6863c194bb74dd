"""The CustomResourceDefinition, generated from the pydantic models.

pydantic emits JSON Schema; Kubernetes wants a structural OpenAPI v3 schema: no
`$ref`, no `anyOf` with null, no `additionalProperties: false` beside `properties`,
no titles, no `propertyNames` (a validation rule bounds a map's keys). The conversion
below is small and total over what our models use.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from schemagate.core.wire import models

JSON = dict[str, Any]

_DROPPED_KEYS = {"title", "$defs"}


def _structural(node: Any, defs: JSON) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            merged = {**_structural(variants[0], defs), **rest}
            merged["nullable"] = True
            if merged.get("default", "absent") is None:
                del merged["default"]
            return _structural(merged, defs)
    out: JSON = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "propertyNames":  # not in a structural schema: a rule says it instead
            out["x-kubernetes-validations"] = [_key_rule(value)]
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "default" and value is None:
            continue
        out[key] = _structural(value, defs)
    return out


def _key_rule(names: JSON) -> JSON:
    """The bounds of a map's keys (`dict[LabelKey, ...]`) as a validation rule."""
    low, high = names.get("minLength", 0), names["maxLength"]
    return {"rule": f"self.all(k, size(k) >= {low} && size(k) <= {high})",
            "message": f"each key is {low} to {high} characters"}


def _schema_of(model: type[BaseModel]) -> JSON:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    result: JSON = _structural(raw, raw.get("$defs", {}))
    return result


def _spec_schema() -> JSON:
    spec = _schema_of(models.DatabaseSchemaSpec)
    spec["properties"]["tables"]["x-kubernetes-list-type"] = "set"
    # Keyed lists: the API server refuses a table or column named twice, and server-side
    # apply merges entries by name instead of replacing the whole list.
    columns = spec["properties"]["columns"]
    columns["x-kubernetes-list-type"] = "map"
    columns["x-kubernetes-list-map-keys"] = ["table"]
    per_table = columns["items"]["properties"]["columns"]
    per_table["x-kubernetes-list-type"] = "map"
    per_table["x-kubernetes-list-map-keys"] = ["name"]
    spec["properties"]["migrations"]["x-kubernetes-validations"] = [
        {"rule": "!has(self.run) || self.run != 'Job' || has(self.job)",
         "message": "migrations.run is Job but migrations.job is not set"},
        {"rule": "!has(self.run) || self.run != 'Alembic' || has(self.alembic)",
         "message": "migrations.run is Alembic but migrations.alembic is not set"},
    ]
    spec["properties"]["database"]["x-kubernetes-validations"] = [
        {"rule": "!has(self.verifyFrom) || self.verifyFrom != 'Pod' || has(self.verifyPod)",
         "message": "database.verifyFrom is Pod but database.verifyPod is not set"},
    ]
    spec["x-kubernetes-validations"] = [
        {"rule": "!has(self.database.verifyFrom) || self.database.verifyFrom != 'Pod' || "
                 "!has(self.migrations) || !has(self.migrations.run) || "
                 "self.migrations.run != 'Alembic'",
         "message": "migrations.run: Alembic runs the migrations from the operator, which "
                    "cannot reach a database only the backend's pods reach (database."
                    "verifyFrom: Pod); use migrations.run: Job"},
    ]
    # Defaults for nested objects: the API server fills them so `kubectl get -o yaml`
    # shows what the operator will act on.
    spec["properties"]["migrations"]["default"] = {}
    spec["properties"]["gate"]["default"] = {}
    return spec


def _status_schema() -> JSON:
    status = _schema_of(models.DatabaseSchemaStatus)
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    # A new object has no status until the operator's first check. The API server fills
    # this in whenever it serves one, so kstatus (Flux, kpt) reads generation 1 against
    # observed generation 0, InProgress, never Current before anything was checked.
    status["default"] = {"observedGeneration": 0}
    return status


def _name_fits_the_gate() -> JSON:
    # Pods gate on the condition type schemagate.io/<name>, a qualified name whose part
    # after the slash takes at most 63 characters; a longer name could gate nothing.
    limit = models.MAX_NAME_LENGTH
    return {"rule": f"self.metadata.name.size() <= {limit}",
            "message": f"metadata.name must be at most {limit} characters: pods gate on the "
                       f"condition type {models.GROUP}/<name>, whose name part takes no more",
            "reason": "FieldValueInvalid"}


def _condition_column(name: str, condition: str, field: str) -> JSON:
    return {"name": name, "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{condition}")].{field}'}


def custom_resource_definition() -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{models.PLURAL}.{models.GROUP}"},
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {"kind": models.KIND, "plural": models.PLURAL,
                      "singular": models.SINGULAR, "shortNames": [models.SHORT_NAME],
                      "categories": list(models.CATEGORIES),
                      "listKind": f"{models.KIND}List"},
            "versions": [{
                "name": models.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    _condition_column("Ready", "Ready", "status"),
                    _condition_column("Reason", "SchemaVerified", "reason"),
                    {"name": "Missing", "type": "string", "jsonPath": ".status.missingSummary",
                     "description": "The missing tables, e.g. 3 tables: a, b, c"},
                    {"name": "Revision", "type": "string",
                     "jsonPath": ".status.revisionSummary",
                     "description": "The Alembic revision(s) recorded in the version table"},
                    {"name": "Gate", "type": "string", "jsonPath": ".status.gateSummary",
                     "priority": 1, "description": "Gated pods open / selected"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "Declares the tables, columns and Alembic revision a backend "
                                   "needs, and gates the backend's pods on them.",
                    "required": ["spec"],
                    "x-kubernetes-validations": [_name_fits_the_gate()],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": _spec_schema(),
                        "status": _status_schema(),
                    },
                }},
            }],
        },
    }


def render() -> str:
    header = "# Generated by `schemagate crd` from schemagate.core.wire.models. Do not edit.\n"
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)
