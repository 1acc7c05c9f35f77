"""`/admin/openapi.json`: the admin API described in OpenAPI 3.1, built from the very
msgspec types that validate its bodies and shape its answers (models.py), so the
description and the server cannot disagree. Built once, at start-up.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .admin import DEFAULT_LIMIT, MAX_BODY, MAX_LIMIT
from .models import (
    ErrorBody,
    KeyCreate,
    KeyCreated,
    KeyList,
    Tenant,
    TenantCreate,
    TenantList,
    TenantPatch,
)

__all__ = ["openapi_document"]

_TYPES: tuple[type[Any], ...] = (
    TenantCreate,
    TenantPatch,
    Tenant,
    TenantList,
    KeyCreate,
    KeyCreated,
    KeyList,
    ErrorBody,
)
_REF = "#/components/schemas/{name}"


def _ref(t: type[Any]) -> dict[str, str]:
    return {"$ref": _REF.format(name=t.__name__)}


def _json(t: type[Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(t)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "invalid body or parameter; `error.param` names the field",
        401: "missing or wrong master key",
        403: "the admin API is disabled (no master key configured)",
        404: "no such tenant or key",
        409: "the name is taken",
        413: f"the body is over {MAX_BODY} bytes",
    }
    return {str(s): _json(ErrorBody, text[s]) for s in (401, 403, *statuses)}


def _body(t: type[Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(t)}}}


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_PAGE = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"items per page (default {DEFAULT_LIMIT})",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "`next_cursor` of the previous page",
        "schema": {"type": "string"},
    },
]


def openapi_document() -> bytes:
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    tenant = [_path("name", "the tenant's name")]
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Interlock admin API (tenant_auth)",
            "version": "1",
            "description": "Tenants and their virtual keys. Every route needs "
            "`Authorization: Bearer <master key>`.",
        },
        "security": [{"masterKey": []}],
        "paths": {
            "/admin/tenants": {
                "post": {
                    "operationId": "createTenant",
                    "summary": "Create a tenant",
                    "requestBody": _body(TenantCreate),
                    "responses": {
                        "201": _json(Tenant, "the tenant"),
                        **_errors(400, 409, 413),
                    },
                },
                "get": {
                    "operationId": "listTenants",
                    "summary": "List tenants by name",
                    "parameters": _PAGE,
                    "responses": {"200": _json(TenantList, "a page of tenants"), **_errors(400)},
                },
            },
            "/admin/tenants/{name}": {
                "get": {
                    "operationId": "getTenant",
                    "parameters": tenant,
                    "responses": {"200": _json(Tenant, "the tenant"), **_errors(404)},
                },
                "patch": {
                    "operationId": "updateTenant",
                    "summary": "Change the fields given (null clears a limit)",
                    "parameters": tenant,
                    "requestBody": _body(TenantPatch),
                    "responses": {
                        "200": _json(Tenant, "the tenant as changed"),
                        **_errors(400, 404, 413),
                    },
                },
                "delete": {
                    "operationId": "deleteTenant",
                    "summary": "Delete a tenant and all its keys",
                    "parameters": tenant,
                    "responses": {"204": {"description": "deleted"}, **_errors(404)},
                },
            },
            "/admin/keys": {
                "post": {
                    "operationId": "createKey",
                    "summary": "Create a key; the answer is the only time it is shown",
                    "requestBody": _body(KeyCreate),
                    "responses": {
                        "201": _json(KeyCreated, "the key, shown once"),
                        **_errors(400, 413),
                    },
                },
                "get": {
                    "operationId": "listKeys",
                    "summary": "List keys (never the keys themselves)",
                    "parameters": [
                        {
                            "name": "tenant",
                            "in": "query",
                            "required": False,
                            "description": "only this tenant's keys",
                            "schema": {"type": "string"},
                        },
                        *_PAGE,
                    ],
                    "responses": {"200": _json(KeyList, "a page of keys"), **_errors(400, 404)},
                },
            },
            "/admin/keys/{id}": {
                "delete": {
                    "operationId": "revokeKey",
                    "summary": "Revoke a key (every replica refuses it within seconds)",
                    "parameters": [_path("id", "the key's id")],
                    "responses": {"204": {"description": "revoked"}, **_errors(404)},
                },
            },
            "/admin/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors(),
                    },
                },
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"masterKey": {"type": "http", "scheme": "bearer"}},
        },
    }
    return msgspec.json.encode(doc)
