"""The OpenAPI schema and the Swagger UI page, served from our own static files under CSP."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from rest_framework.authtoken.models import Token

ASSET = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.django_db
def test_the_schema_is_openapi_with_the_session_and_log_paths(alice_client):
    response = alice_client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"post", "get"} <= set(paths["/voice/sessions"])
    assert "get" in paths["/voice/sessions/{session_id}"]
    assert "put" in paths["/voice/sessions/{session_id}/end"]
    logs = paths["/api/logs"]
    assert {"post", "get"} <= set(logs)
    assert [p["name"] for p in logs["get"]["parameters"]] == ["tail"]
    assert "413" in logs["post"]["responses"]


@pytest.mark.django_db
def test_the_docs_page_uses_only_local_static_assets(alice_client):
    response = alice_client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="swagger-ui"' in html
    assets = ASSET.findall(html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css" in assets
    for asset in assets:
        # Static files, or the split view's own init script on this same path.
        assert asset.startswith("/static/") or asset == "/api/docs/?script=", asset
    assert "//" not in "".join(a.removeprefix("/static/") for a in assets)
    assert "<script>" not in html  # no inline script: the init script is served separately


@pytest.mark.django_db
def test_the_docs_page_relaxes_csp_only_for_styles_and_data_images(alice_client):
    response = alice_client.get("/api/docs/")

    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["img-src"] == "'self' data:"
    assert policy["script-src"].split()[0] == "'self'"
    assert "unsafe" not in policy["script-src"]
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"


@pytest.mark.django_db
def test_the_docs_init_script_is_served_as_javascript(alice_client):
    response = alice_client.get("/api/docs/", {"script": ""})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in response.content.decode()


@pytest.mark.django_db
def test_other_pages_keep_the_strict_style_policy(alice_client):
    response = alice_client.get("/healthz")

    assert "unsafe-inline" not in response["Content-Security-Policy"]


# --- A login, like the rest of the API -----------------------------------------------------------------


@pytest.mark.django_db
def test_an_anonymous_caller_gets_401_json_for_the_schema(client):
    response = client.get("/api/schema/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "error": {"code": "not_authenticated", "message": "Authentication credentials were not provided."}
    }


@pytest.mark.django_db
def test_a_bad_token_gets_401_json_for_the_schema_and_the_docs(client):
    for path in ("/api/schema/", "/api/docs/"):
        response = client.get(path, HTTP_AUTHORIZATION="Token not-a-token")

        assert response.status_code == 401, path
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"error": {"code": "authentication_failed", "message": "Invalid token."}}


@pytest.mark.django_db
def test_a_token_reads_the_schema_and_the_docs(client, alice):
    token = Token.objects.create(user=alice)

    schema = client.get("/api/schema/", {"format": "json"}, HTTP_AUTHORIZATION=f"Token {token.key}")
    docs = client.get("/api/docs/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert schema.status_code == 200
    assert "/voice/sessions" in schema.json()["paths"]
    assert docs.status_code == 200
    assert 'id="swagger-ui"' in docs.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/docs/?script="])
def test_an_anonymous_browser_is_sent_from_the_docs_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=" + quote(path, safe="/")
