"""OpenAPI fragments that describe the sandbox's FHIR bodies (the handlers parse raw bytes)."""

from __future__ import annotations

FHIR_JSON = "application/fhir+json"

_CODING = {
    "type": "object",
    "required": ["system", "code"],
    "properties": {"system": {"type": "string"}, "code": {"type": "string"}, "display": {"type": "string"}},
}
_CONCEPT = {"type": "object", "required": ["coding"], "properties": {"coding": {"type": "array", "minItems": 1, "items": _CODING}}}
_IDENTIFIER = {"type": "object", "required": ["system", "value"], "properties": {"system": {"type": "string"}, "value": {"type": "string"}}}
_EXTENSION = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string"},
        "valueInteger": {"type": "integer"},
        "valueString": {"type": "string"},
        "valueBoolean": {"type": "boolean"},
        "valueDateTime": {"type": "string"},
    },
}

OPERATION_OUTCOME = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

APPOINTMENT = {
    "type": "object",
    "required": ["resourceType", "identifier", "status", "start", "end", "serviceType", "specialty", "appointmentType", "participant", "extension"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Appointment"]},
        "identifier": {"type": "array", "minItems": 1, "maxItems": 1, "items": _IDENTIFIER},
        "status": {"type": "string", "enum": ["booked", "cancelled"]},
        "cancelationReason": {"type": "object", "properties": {"text": {"type": "string"}}},
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "serviceType": {"type": "array", "minItems": 1, "items": _CONCEPT},
        "specialty": {"type": "array", "minItems": 1, "items": _CONCEPT},
        "appointmentType": _CONCEPT,
        "comment": {"type": "string"},
        "participant": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "required": ["actor"],
                "properties": {
                    "actor": {
                        "type": "object",
                        "required": ["type", "identifier"],
                        "properties": {
                            "type": {"type": "string", "enum": ["Patient", "Location", "Practitioner"]},
                            "identifier": _IDENTIFIER,
                            "display": {"type": "string"},
                        },
                    },
                    "status": {"type": "string"},
                },
            },
        },
        "extension": {"type": "array", "items": _EXTENSION},
    },
}

SERVICE_REQUEST = {
    "type": "object",
    "required": ["resourceType", "identifier", "status", "intent", "code", "performerType", "subject", "performer", "occurrencePeriod", "authoredOn", "extension"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["ServiceRequest"]},
        "identifier": {"type": "array", "minItems": 1, "maxItems": 1, "items": _IDENTIFIER},
        "status": {"type": "string", "enum": ["active", "revoked", "completed"]},
        "intent": {"type": "string", "enum": ["order"]},
        "code": _CONCEPT,
        "performerType": _CONCEPT,
        "subject": {"type": "object", "required": ["identifier", "display"], "properties": {"identifier": _IDENTIFIER, "display": {"type": "string"}}},
        "performer": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["type", "identifier"], "properties": {"type": {"type": "string", "enum": ["Location"]}, "identifier": _IDENTIFIER}},
        },
        "occurrencePeriod": {"type": "object", "required": ["start", "end"], "properties": {"start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"}}},
        "authoredOn": {"type": "string", "format": "date-time"},
        "extension": {"type": "array", "items": _EXTENSION},
    },
}

BUNDLE = {
    "type": "object",
    "required": ["resourceType", "type"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "type": {"type": "string"},
        "total": {"type": "integer"},
        "link": {"type": "array", "items": {"type": "object", "properties": {"relation": {"type": "string"}, "url": {"type": "string"}}}},
        "entry": {"type": "array", "items": {"type": "object"}},
    },
}

BATCH_REQUEST = {
    "type": "object",
    "required": ["resourceType", "type", "entry"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "type": {"type": "string", "enum": ["batch"]},
        "entry": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["request", "resource"],
                "properties": {
                    "request": {
                        "type": "object",
                        "required": ["method", "url"],
                        "properties": {"method": {"type": "string", "enum": ["PUT"]}, "url": {"type": "string"}},
                    },
                    "resource": {"oneOf": [APPOINTMENT, SERVICE_REQUEST]},
                },
            },
        },
    },
}


def _content(schema: dict) -> dict:
    return {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema}}


def _error(description: str, headers: dict | None = None) -> dict:
    answer: dict = {"description": description, "content": {FHIR_JSON: {"schema": OPERATION_OUTCOME}}}
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "seconds to wait"}}
_AUTH_CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer error="invalid_token"'}}
_COMMON_ERRORS = {
    400: _error("bad request"),
    401: _error("missing, unknown or expired token", _AUTH_CHALLENGE),
    429: _error("rate limit exceeded", _RETRY_AFTER),
    503: _error("transient failure"),
}


def put_body(resource_type: str) -> dict:
    schema = APPOINTMENT if resource_type == "Appointment" else SERVICE_REQUEST
    return {"requestBody": {"required": True, "content": _content(schema)}}


def put_responses(resource_type: str) -> dict:
    """A PUT answers 200/201 with the stored resource as `application/fhir+json`."""
    schema = APPOINTMENT if resource_type == "Appointment" else SERVICE_REQUEST
    stored = {"headers": {"ETag": {"schema": {"type": "string"}}}, "content": {FHIR_JSON: {"schema": schema}}}
    return {
        200: {"description": "updated, or identical (version unchanged)", **stored},
        201: {"description": "created", **stored},
        404: _error("unknown unit, or cancel/revoke of something never stored"),
        409: _error("stale change: source-sequence lower than the stored one"),
        422: _error("the resource breaks a rule"),
        **_COMMON_ERRORS,
    }


SEARCH_RESPONSES = {200: {"description": "searchset Bundle", "content": {FHIR_JSON: {"schema": BUNDLE}}}, **_COMMON_ERRORS}
BATCH_BODY = {"requestBody": {"required": True, "content": _content(BATCH_REQUEST)}}
BATCH_RESPONSES = {
    200: {"description": "batch-response Bundle, entries in request order", "content": {FHIR_JSON: {"schema": BUNDLE}}},
    413: _error("more than 100 entries"),
    **_COMMON_ERRORS,
}
TOKEN_REQUEST = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type", "client_id", "client_secret"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                    },
                }
            }
        },
    }
}
TOKEN_RESPONSES = {
    200: {
        "description": "access token",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string"}, "expires_in": {"type": "integer"}},
                }
            }
        },
    },
    400: _error("unsupported grant type"),
    401: _error("wrong client credentials"),
}


def decorate(schema: dict) -> None:
    """Add the OAuth2 client-credentials scheme and require it on every /fhir operation.

    Also drop what FastAPI documents by default but the sandbox never answers: a `422`
    HTTPValidationError for bad parameters (the sandbox answers `400` with an
    OperationOutcome) and an untyped `application/json` beside a declared FHIR body.
    """
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["clinic24"] = {
        "type": "oauth2",
        "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":
                del responses["422"]
                responses.setdefault("400", _error("invalid request parameters"))
            for answer in responses.values():
                content = answer.get("content", {})
                if FHIR_JSON in content and content.get("application/json", {}).get("schema") == {}:
                    del content["application/json"]
            if path.startswith("/fhir"):
                operation["security"] = [{"clinic24": []}]
    for name in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(name, None)
    if components.get("schemas") == {}:
        del components["schemas"]
