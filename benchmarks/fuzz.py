"""Property-based fuzzing of the bridge's API from its own OpenAPI document (hypothesis).

For every operation: bodies drawn from the operation's JSON schema (`schema_strategy`, which covers
the JSON-schema keywords FastAPI emits; hypothesis-jsonschema does not work with current
hypothesis), values at and beyond the schema's bounds included, and malformed ones (arbitrary JSON, bytes); path ids drawn from the id pattern and from arbitrary
text. Numbers include NaN and +-Infinity (json.dumps writes them as the bare words NaN and
Infinity, which Python's json reads back), and about half the bodies go out chunked (no
Content-Length). The server must answer each with something other than 5xx.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
PATH_ID = st.from_regex(r"\A[0-9a-f]{16}\Z") | st.text(max_size=24)


def _resolve(schema, components: dict):
    """Inline #/components/schemas references (hypothesis-jsonschema wants one self-contained schema)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolve(components[schema["$ref"].rsplit("/", 1)[-1]], components)
        return {k: _resolve(v, components) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v, components) for v in schema]
    return schema


def schema_strategy(schema: dict) -> st.SearchStrategy:
    """Values for a (resolved) JSON schema: mostly valid, with the bounds and a little beyond."""
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([schema_strategy(s) for s in schema.get("anyOf") or schema["oneOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        edges = [v for b in (low, high) if b is not None for v in (b, b - 1, b + 1)]
        if kind == "integer":
            inside = st.integers(None if low is None else int(low), None if high is None else int(high))
            return inside | st.sampled_from([int(e) for e in edges] or [0]) | NON_FINITE
        inside = st.floats(low, high, allow_nan=False, allow_infinity=False)
        return inside | st.sampled_from(edges or [0.0]) | NON_FINITE
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True) | st.text(max_size=8)
        low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
        return st.text(min_size=low, max_size=min(high, 64)) | st.just("x" * (high + 1))
    if kind == "array":
        items = schema_strategy(schema.get("items", {}))
        low, high = schema.get("minItems", 0), min(schema.get("maxItems", 5), 5)
        return st.lists(items, min_size=low, max_size=max(low, high)) | st.lists(items, max_size=high + 2)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: schema_strategy(v) for k, v in properties.items() if k in required}
        optional = {k: schema_strategy(v) for k, v in properties.items() if k not in required}
        if not properties and isinstance(schema.get("additionalProperties"), dict):
            return st.dictionaries(st.text(max_size=12), schema_strategy(schema["additionalProperties"]), max_size=4)
        return st.fixed_dictionaries(fixed, optional=optional)
    return ANY_JSON


def _send(url: str, token: str, method: str, path: str, body: bytes | None, chunked: bool = False) -> int:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        # an iterable body goes out with Transfer-Encoding: chunked
        connection.request(method, path, body=iter([body]) if chunked and body is not None else body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _operation_test(url, token, template, method, names, bodies, examples, counts, failures):
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(body=bodies, ids=st.lists(PATH_ID, min_size=len(names), max_size=len(names)), chunked=st.booleans())
    def check(body, ids, chunked):
        path = template
        for name, value in zip(names, ids):
            path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
        status = _send(url, token, method.upper(), path, body, chunked)
        counts["requests"] += 1
        if status >= 500:
            counts["5xx"] += 1
            failures.append(f"{method.upper()} {path} {body[:200] if body else b''!r}{' (chunked)' if chunked else ''} -> {status}")

    return check


def fuzz(url: str, token: str, examples_per_operation: int) -> tuple[int, int, list[str]]:
    """(requests sent, 5xx answers, a few of the failing requests)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("GET", "/v1/openapi.json", headers={"Authorization": f"Bearer {token}"})
    spec = json.loads(connection.getresponse().read())
    connection.close()
    components = spec.get("components", {}).get("schemas", {})
    counts = {"requests": 0, "5xx": 0}
    failures: list[str] = []

    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            bodies = st.none()
            if body_schema is not None:
                valid = schema_strategy(_resolve(body_schema, components)).map(lambda b: json.dumps(b).encode())
                malformed = ANY_JSON.map(lambda b: json.dumps(b).encode()) | st.binary(max_size=64)
                bodies = valid | malformed
            names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"]

            _operation_test(url, token, template, method, names, bodies, examples_per_operation, counts, failures)()
    return counts["requests"], counts["5xx"], failures
