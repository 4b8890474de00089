"""``/openapi.json``: a valid OpenAPI 3.1 document that describes every route the app serves."""

from __future__ import annotations

from openapi_spec_validator import validate
from starlette.routing import Route

from examples.booking.api import create_app
from examples.booking.schemas import BookBody, BookingOut
from tests.booking.conftest import serving


async def test_the_document_is_valid_and_complete():
    app = create_app(insecure_no_auth=True)
    async with serving(app) as client:
        r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)  # raises on any departure from the OpenAPI 3.1 schema
    assert doc["openapi"] == "3.1.0"

    served = {
        (method.lower(), route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == served

    book = doc["paths"]["/book"]["post"]
    assert book["security"] == [{"bearer": []}]
    body_ref = book["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/BookBody"
    ok_ref = book["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert ok_ref == "#/components/schemas/BookingOut"
    assert {"400", "401", "403", "409", "413", "415", "422", "503"} <= set(book["responses"])
    schemas = doc["components"]["schemas"]
    assert schemas["BookBody"]["additionalProperties"] is False
    assert set(schemas["BookBody"]["properties"]) == set(BookBody.model_fields)
    assert set(schemas["BookingOut"]["properties"]) == set(BookingOut.model_fields)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "security" not in doc["paths"]["/health"]["get"]
