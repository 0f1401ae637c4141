"""The README's production path, walked as a user walks it.

`make serve` runs scripts/serve.sh: collectstatic with the production storage (WhiteNoise's
compressed manifest), migrate, then uvicorn with several workers. This test runs that same
script with the project's own settings module (not the suite's, which swaps the static storage
for the finders), DEBUG off and SSL redirect on, behind a stand-in for a TLS proxy: every request
carries ``X-Forwarded-Proto: https`` and ``BEHIND_TLS_PROXY=true`` makes it count. A non-staff
user logs in through /accounts/login/ with the CSRF token like a browser, a staff user through
the admin's login, and every page's scripts, stylesheets and icons, the SDK's module graph the
playground imports on Start and its audio worklets must answer 200.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.conf import global_settings
from django.test import override_settings
from requests.cookies import RequestsCookieJar

from devtools.servers import make_serve_server
from tests.server import env_for_test_database

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

PASSWORD = "serve-pass-123"
# What the proxy adds to each request it forwards over TLS.
PROXIED = {"X-Forwarded-Proto": "https"}
HASHED = re.compile(r"\.[0-9a-f]{12}\.\w+$")  # the manifest storage's file names: name.<hash>.ext
# Relative module specifiers in ES modules: `from "./x.js"`, `import "./x.js"`, `import("./x.js")`.
RELATIVE_IMPORT = re.compile(r"""(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")
LINE_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)  # e.g. livekit's `//   import { Convert } from "./file";`
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")


@pytest.fixture(scope="module")
def production_server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    env = env_for_test_database()
    env.update(
        DJANGO_SETTINGS_MODULE="voiceagent.settings",
        DEBUG="false",
        STATIC_ROOT=str(tmp_path_factory.mktemp("staticfiles")),
        BEHIND_TLS_PROXY="true",
        ELEVENLABS_API_KEY="",  # a first deployment: no key yet, the simulated agent
    )
    env.pop("SECURE_SSL_REDIRECT", None)  # the production default: on
    with make_serve_server(env=env, workers=2) as base_url:
        yield base_url


@pytest.fixture
def users(django_user_model):
    # The server checks passwords with the production hashers, not the suite's fast MD5.
    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        alice = django_user_model.objects.create_user("alice", password=PASSWORD)
        charlie = django_user_model.objects.create_user("charlie", password=PASSWORD, is_staff=True, is_superuser=True)
    return alice, charlie


class BehindTlsProxy(requests.Session):
    """A browser's view of the site behind the TLS proxy: it sends its Secure cookies there.

    The proxy is not really there (the test talks plain HTTP to uvicorn), and a cookie jar keeps
    Secure cookies off plain HTTP; requests builds a fresh jar for every request, so the jar that
    counts this HTTP as secure is put on each prepared request (redirects reuse it).
    """

    COOKIE_POLICY = DefaultCookiePolicy(secure_protocols=("https", "wss", "http"))

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.headers.update(PROXIED)

    def prepare_request(self, request):
        prepared = super().prepare_request(request)
        jar = RequestsCookieJar(policy=self.COOKIE_POLICY)
        jar.update(prepared._cookies)
        prepared.headers.pop("Cookie", None)
        prepared.prepare_cookies(jar)
        return prepared


def browser(base_url: str) -> BehindTlsProxy:
    return BehindTlsProxy(base_url)


def https_origin(base_url: str) -> str:
    return "https://" + urlsplit(base_url).netloc


def submit_login(client: BehindTlsProxy, login_url: str, username: str) -> requests.Response:
    """Load the login form, then post it with its CSRF token, Origin and Referer, as a browser does."""
    form = client.get(login_url)
    assert form.status_code == 200, form.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    next_path = re.search(r'name="next" value="([^"]*)"', form.text)
    origin = https_origin(client.base_url)
    return client.post(
        login_url,
        data={
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": PASSWORD,
            "next": next_path.group(1) if next_path else "",
        },
        headers={"Origin": origin, "Referer": origin + urlsplit(login_url).path},
    )


class AssetParser(HTMLParser):
    """What a page makes the browser fetch: scripts, stylesheets, icons, images; and its JSON script blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.json_scripts: dict[str, str] = {}  # id or type -> text
        self._script_key: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src"):
                self.assets.append(attrs["src"])
            key = attrs.get("id") or attrs.get("type")
            self._script_key = key if attrs.get("type") in ("importmap", "application/json") else None
        elif (
            tag == "link"
            and attrs.get("href")
            and {"stylesheet", "icon", "modulepreload"} & set((attrs.get("rel") or "").split())
        ):
            self.assets.append(attrs["href"])
        elif tag == "img" and attrs.get("src"):
            self.assets.append(attrs["src"])

    def handle_data(self, data):
        if self._script_key:
            self.json_scripts[self._script_key] = self.json_scripts.get(self._script_key, "") + data

    def handle_endtag(self, tag):
        if tag == "script":
            self._script_key = None


def page_assets(html: str) -> tuple[list[str], dict[str, str]]:
    parser = AssetParser()
    parser.feed(html)
    return [url for url in parser.assets if not url.startswith("data:")], parser.json_scripts


def fetch_all(client: BehindTlsProxy, page_url: str, urls: list[str]) -> dict[str, int]:
    """Fetch ``urls`` (relative to the page) and what they import or reference in turn; url -> status."""
    seen: dict[str, int] = {}
    queue = [urljoin(page_url, url) for url in urls]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        response = client.get(url)
        seen[url] = response.status_code
        if response.status_code != 200:
            continue
        path = urlsplit(url).path
        if path.endswith((".js", ".mjs")) and "/static/" in path:
            queue += [urljoin(url, spec) for spec in RELATIVE_IMPORT.findall(LINE_COMMENT.sub("", response.text))]
        elif path.endswith(".css"):
            queue += [urljoin(url, ref) for ref in CSS_URL.findall(response.text) if not ref.startswith("data:")]
    return seen


def assert_page_and_assets(client: BehindTlsProxy, path: str, *, extra: list[str] = ()) -> dict[str, int]:
    page = client.get(client.base_url + path)
    assert page.status_code == 200, f"{path}: {page.status_code} {page.text[:300]}"
    assert urlsplit(page.url).path == path, f"{path} ended at {page.url}"
    assets, _ = page_assets(page.text)
    assert assets, f"{path} references no asset"
    for url in assets:
        if url.startswith("/static/"):
            # Named by the manifest: proof that the production storage collected and serves them.
            assert HASHED.search(urlsplit(url).path), f"{path}: {url} is not a hashed name"
    fetched = fetch_all(client, page.url, [*assets, *extra])
    missing = {url: status for url, status in fetched.items() if status != 200}
    assert missing == {}, f"{path}: assets that did not load"
    return fetched


def test_make_serve_runs_the_production_path_and_every_asset_loads(production_server, users):
    alice, charlie = users

    # Plain HTTP without the proxy's header is sent to HTTPS: the production profile is on.
    direct = requests.get(production_server + "/playground/", allow_redirects=False)
    assert direct.status_code == 301
    assert direct.headers["Location"].startswith("https://")

    anonymous = browser(production_server)
    # The schema and the docs need a login: JSON 401 for the schema, the login page for the docs.
    schema = anonymous.get(production_server + "/api/schema/")
    assert schema.status_code == 401
    assert schema.headers["Content-Type"].startswith("application/json")
    docs = anonymous.get(production_server + "/api/docs/", allow_redirects=False)
    assert docs.status_code == 302
    assert docs.headers["Location"] == "/accounts/login/?next=/api/docs/"
    assert_page_and_assets(anonymous, "/accounts/login/")
    assert_page_and_assets(anonymous, "/admin/login/")

    # A non-staff user logs in through our login page and lands on the playground.
    user = browser(production_server)
    landed = submit_login(user, production_server + "/accounts/login/?next=/playground/", "alice")
    assert landed.status_code == 200
    assert urlsplit(landed.url).path == "/playground/"
    assert "Signed in as <strong>alice</strong>" in landed.text

    # The playground: its own files, and what Start loads (import map: the SDK's module graph and
    # livekit-client; the audio worklets named in the page's configuration).
    _, blocks = page_assets(landed.text)
    imports = json.loads(blocks["importmap"])["imports"]
    worklets = json.loads(blocks["playground-config"])["workletPaths"]
    assert set(imports) == {"@elevenlabs/client", "livekit-client"}
    assert set(worklets) == {"rawAudioProcessor", "audioConcatProcessor"}
    start_loads = [*imports.values(), *worklets.values()]
    for url in start_loads:
        assert HASHED.search(url), url
    fetched = assert_page_and_assets(user, "/playground/", extra=start_loads)
    sdk_modules = [url for url in fetched if "/static/vendor/elevenlabs-client/" in url]
    assert len(sdk_modules) > 20, "the SDK's module graph was not followed"
    assert any(url.endswith("/WebSocketConnection.js") for url in sdk_modules)

    assert_page_and_assets(user, "/api/docs/", extra=["/api/schema/?format=json"])
    assert_page_and_assets(user, "/accounts/password_change/")

    # The admin stays staff-only: alice's password is right, but the admin's login refuses her.
    refused = submit_login(browser(production_server), production_server + "/admin/login/", "alice")
    assert urlsplit(refused.url).path == "/admin/login/"
    assert "staff account" in refused.text

    staff = browser(production_server)
    admin = submit_login(staff, production_server + "/admin/login/?next=/admin/", "charlie")
    assert urlsplit(admin.url).path == "/admin/"
    assert_page_and_assets(staff, "/admin/")
    assert_page_and_assets(staff, "/admin/voice_sessions/voicesession/")
    analytics = assert_page_and_assets(staff, "/admin/analytics/")
    assert any(HASHED.search(url) and "/static/sessions/analytics." in url for url in analytics), analytics


def test_static_files_are_served_compressed_and_cached_for_good(production_server):
    client = browser(production_server)
    page = client.get(production_server + "/accounts/login/")
    stylesheet = next(url for url in page_assets(page.text)[0] if url.endswith(".css"))

    response = client.get(production_server + stylesheet, headers={"Accept-Encoding": "gzip"})

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "immutable" in response.headers["Cache-Control"]
