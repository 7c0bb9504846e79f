"""Every request body the client sends validates against Iconik's own OpenAPI description.

Reads ../shared/iconik-openapi/assets.json (reference material, never copied into the repo); skipped,
saying so, where that file is absent."""

import json

import pytest

from reversesync.iconik import IconikClient
from reversesync.sandbox import Sandbox
from tests.conftest import OPENAPI_ASSETS

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

pytestmark = pytest.mark.skipif(not OPENAPI_ASSETS.exists(),
                                reason=f"{OPENAPI_ASSETS} is absent: the contract cannot be checked here")

ASSET = "7b2e1d4c-0000-4000-8000-0000000000c1"


def _as_json_schema(node):
    """OpenAPI 3.0 schema objects to JSON Schema: `nullable: true` becomes 'or null'."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="module")
def validate():
    from referencing.jsonschema import DRAFT4

    document = _as_json_schema(json.loads(OPENAPI_ASSETS.read_text(encoding="utf-8")))
    resource = referencing.Resource.from_contents(document, default_specification=DRAFT4)
    registry = referencing.Registry().with_resource("urn:iconik-assets", resource)
    schemas = document["components"]["schemas"]

    def check(body, schema_name):
        validator = jsonschema.Draft4Validator({"$ref": f"urn:iconik-assets#/components/schemas/{schema_name}"},
                                               registry=registry)
        problems = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(body)]
        read_only = [name for name, spec in schemas[schema_name]["properties"].items()
                     if spec.get("readOnly") and name in body]
        assert problems == [] and read_only == [], (schema_name, problems, read_only)

    return check


def test_every_body_the_client_sends_matches_segment_schemas(validate):
    with Sandbox(index_lag=0) as sandbox:  # body shapes are the point here, not the index
        sandbox.catalogue.add_asset(ASSET)
        seeded = sandbox.catalogue.add_segment(ASSET, "GENERIC", 4000, 4000, metadata={"Editor": ["kim"]},
                                               segment_text="by hand", segment_color="#ff9900", external_id=None)
        client = IconikClient(sandbox.url, sandbox.app_id, sandbox.auth_token)
        created = client.create_segment(ASSET, 1000, 2000, external_id="reversesync:0f")
        client.patch_segment_times(ASSET, seeded["id"], 1000, 2500)   # an update
        client.patch_segment_times(ASSET, seeded["id"], 4000, 4000)   # what `undo` sends to restore
        client.delete_segment(ASSET, created["id"])                   # and to remove what it created
        bodies = list(sandbox.bodies)
    assert [method for method, _, _ in bodies] == ["POST", "PATCH", "PATCH"]
    for method, _, body in bodies:
        validate(body, "SegmentSchema" if method == "POST" else "EditSegmentSchema")
        assert isinstance(body["time_start_milliseconds"], int)
