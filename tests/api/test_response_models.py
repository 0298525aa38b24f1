"""Every route declares what it answers: a response model (tipg validates its bodies
against its pydantic models in its tests; so do we, in the authorisation matrix, which
calls every route as every kind of caller: see ``body_fits_model`` in
tests/security/test_matrix.py), or, for what is not JSON (files, pages, redirects, empty
204 answers), an explicit response class."""

from __future__ import annotations

import typing

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, TypeAdapter

from api.schemas.common import Page, paged


def api_routes(app) -> list[APIRoute]:
    """Every APIRoute of the app, included routers flattened."""
    return [c.original_route for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def is_model(annotation) -> bool:
    """A pydantic model, or a list of them: not ``dict``, ``list[dict]`` or ``Any``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if typing.get_origin(annotation) is list:
        return all(is_model(arg) for arg in typing.get_args(annotation))
    return False


def explicit_non_json(route: APIRoute) -> bool:
    """A response class chosen on purpose (the default is a placeholder) that is not JSON."""
    cls = getattr(route.response_class, "value", route.response_class)
    explicit = route.response_class is cls
    return explicit and not issubclass(cls, JSONResponse)


def test_every_route_declares_its_answer(app):
    missing = [f"{sorted(r.methods)} {r.path}" for r in api_routes(app)
               if not is_model(r.response_model) and not explicit_non_json(r)]
    assert len(api_routes(app)) >= 80
    assert not missing, "routes without a response_model (or an explicit non-JSON response_class):\n" + "\n".join(missing)


def test_json_routes_carry_their_model_in_the_openapi_document(app):
    """Every JSON answer is described by a schema, not ``{}``: the document a client
    generates code from says what comes back."""
    doc = app.openapi()
    untyped = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for status, answer in op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                for media, content in (answer.get("content") or {}).items():
                    if "json" in media and not content.get("schema"):
                        untyped.append(f"{method.upper()} {path} {status} {media}")
    assert untyped == []


def test_the_paging_envelope_fits_page():
    class Params:
        limit, offset = 2, 2

    request = type("R", (), {})()
    from starlette.datastructures import URL

    request.url = URL("http://test/api/persons?limit=2&offset=2")
    body = paged(request, Params(), [{"id": 1}, {"id": 2}], 7)
    page = TypeAdapter(Page[dict]).validate_python(body)
    assert (page.numberMatched, page.numberReturned) == (7, 2)
    assert [link.rel for link in page.links] == ["self", "next", "prev"]
    assert "offset=4" in page.links[1].href and "offset=0" in page.links[2].href
