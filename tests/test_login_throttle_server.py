"""Password guessing against uvicorn with two workers: the admin login locks the pair after ten failures.

Under uvicorn Django runs its middleware in async mode, where django-axes takes another path
than under the test client; this runs that path, CSRF and all, from outside.
"""

from __future__ import annotations

import re

import pytest
import requests

from tests.server import live_asgi_server  # noqa: F401

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def admin_login(base_url: str, username: str, password: str) -> requests.Response:
    """One login attempt as a browser makes it: fetch the form, post it back with its CSRF token."""
    form = requests.get(f"{base_url}/admin/login/", timeout=10)
    token = CSRF_FIELD.search(form.text).group(1)
    # The cookies are Secure (DEBUG off), which requests will not send over plain HTTP: send them by hand.
    cookie = form.cookies.get("csrftoken")
    return requests.post(
        f"{base_url}/admin/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"},
        headers={"Cookie": f"csrftoken={cookie}", "Accept": "text/html"},
        allow_redirects=False,
        timeout=10,
    )


def test_ten_wrong_admin_passwords_lock_the_pair_then_the_right_one_is_refused(live_asgi_server, charlie_staff):  # noqa: F811
    codes = [admin_login(live_asgi_server, "charlie", f"guess-{i}").status_code for i in range(10)]
    refused = admin_login(live_asgi_server, "charlie", "charlie-pass-123")

    assert codes == [200] * 9 + [429]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "900"
    assert "Too many failed logins" in refused.text
    assert "sessionid" not in refused.headers.get("Set-Cookie", "")


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-pass-123")


def test_other_users_log_in_from_the_guessers_address(live_asgi_server, charlie_staff, root):  # noqa: F811
    for i in range(10):
        admin_login(live_asgi_server, "charlie", f"guess-{i}")

    response = admin_login(live_asgi_server, "root", "root-pass-123")

    assert response.status_code == 302
    assert "sessionid=" in response.headers["Set-Cookie"]
