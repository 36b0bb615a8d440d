"""The app's shape, without a model: each endpoint in its routes_*.py module, in docs/serving.md's
order, and the answers that come before any model is needed (probes, the token, the query checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from skinfood_cli.serving import routes_diseases, routes_explain, routes_page, routes_predict, routes_service
from skinfood_cli.serving.config import ServeConfig
from skinfood_cli.serving.server import create_app

ROUTES = (routes_predict, routes_explain, routes_diseases, routes_service, routes_page)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def _client(**cfg) -> TestClient:
    # No `with`: the lifespan never runs, so the model never loads and the server stays "not ready".
    return TestClient(create_app(ServeConfig(model="not loaded", device="cpu", **cfg)))


def test_each_endpoint_lives_in_a_routes_module_in_the_docs_order():
    paths = list(create_app(ServeConfig(model="not loaded")).openapi()["paths"])
    # The routers' own routes are the app's: nothing is defined anywhere else.
    assert [r.path for m in ROUTES for r in m.router.routes if r.include_in_schema] == paths
    assert [r.path for r in routes_page.router.routes] == ["/", "/static/{name}"]
    block = re.search(r"## Endpoints.*?```sh\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL).group(1)
    documented = list(dict.fromkeys(re.findall(r"8000(/[\w/]+)", block)))
    assert len(paths) == len(documented)
    for path, example in zip(paths, documented):
        assert re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", path), example), (path, example)


def test_probes_answer_without_a_token_and_say_not_ready_before_the_model_loads():
    client = _client(token="s3cret")
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
    assert ready.json() == {"error": {"code": "not_ready", "message": "the model is not ready"}}
    info = client.get("/v1/model", headers={"Authorization": "Bearer s3cret"})
    assert info.status_code == 503 and info.json()["error"]["code"] == "not_ready"


def test_the_token_is_checked_after_the_query_and_before_the_model():
    client = _client(token="s3cret")
    # A bad query answers 400 whatever the token, as FastAPI checks it before the route runs.
    bad = client.post("/v1/predict?lang=xx")
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("query.lang")
    for path in ("/v1/predict", "/v1/explain"):
        missing = client.post(path, content=b"x", headers={"Content-Type": "image/jpeg"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(path, content=b"x", headers={"Content-Type": "image/jpeg", "Authorization": "Bearer no"})
        assert wrong.status_code == 401
    assert client.get("/v1/diseases").status_code == 401
    assert client.get("/metrics").status_code == 401
    right = {"Authorization": "bearer  s3cret"}  # the scheme in any case, spaces around the token
    assert client.get("/v1/diseases", headers=right).status_code == 200
    assert client.post("/v1/predict", content=b"x", headers={**right, "Content-Type": "image/jpeg"}).status_code == 503


def test_top_k_is_bounded_in_the_schema_and_in_the_answer():
    client = _client()
    params = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["parameters"]
    top_k = next(p for p in params if p["name"] == "top_k")["schema"]
    assert (top_k["minimum"], top_k["maximum"], top_k["default"]) == (1, 10, 3)
    answer = client.post("/v1/predict?top_k=11", content=b"x", headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "query.top_k: Input should be less than or equal to 10"


def test_the_page_and_unknown_paths():
    client = _client()
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/static/app.js").headers["cache-control"] == "no-cache"
    assert client.get("/static/nope").json() == {"error": {"code": "not_found", "message": "no such file"}}
    assert client.get("/nowhere").json()["error"]["code"] == "not_found"
    assert client.get("/v1/predict").json()["error"]["code"] == "method_not_allowed"
    assert client.get("/v1/diseases/no-such-thing").status_code == 404
