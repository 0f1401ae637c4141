"""Password guessing: a username + client address pair is locked after LOGIN_FAILURE_LIMIT failures.

django-axes counts the failures of every door that calls authenticate() with a password: our login
page (/accounts/login/, for everyone), the admin's (staff) and DRF's api-auth login.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

DOORS = ["/accounts/login/", "/admin/login/", "/api-auth/login/"]
# Charlie is staff, so both doors let him in (the admin admits staff only).
GUESSER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"
PASSWORD = "charlie-pass-123"


def log_in(client, door: str, username: str, password: str, address: str = GUESSER, **headers):
    return client.post(
        door, {"username": username, "password": password, "next": "/voice/sessions"}, REMOTE_ADDR=address, **headers
    )


def logged_in(response) -> bool:
    return response.status_code == 302


def guess(client, door: str, username: str = "charlie", times: int | None = None, address: str = GUESSER) -> list[int]:
    times = django_settings.LOGIN_FAILURE_LIMIT if times is None else times
    return [log_in(client, door, username, f"wrong-{i}", address).status_code for i in range(times)]


def test_the_defaults_are_ten_failures_and_fifteen_minutes():
    assert django_settings.LOGIN_FAILURE_LIMIT == 10
    assert django_settings.AXES_FAILURE_LIMIT == 10
    assert django_settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert django_settings.AXES_ENABLED is True


@pytest.mark.parametrize("door", DOORS)
def test_after_ten_wrong_passwords_the_right_one_is_refused_with_429(client, charlie_staff, door):
    # The form again with its error, and the tenth failure is already told about the lockout.
    assert guess(client, door) == [200] * 9 + [429]

    response = log_in(client, door, "charlie", PASSWORD, HTTP_ACCEPT="text/html")

    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert "15 minutes" in page
    # The page has the look of the door: the admin's for the admin, our account pages' for the rest.
    assert ("admin/css/base.css" in page) == (door == "/admin/login/")
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("door", DOORS)
def test_nine_wrong_passwords_do_not_lock_and_a_success_starts_the_count_again(client, charlie_staff, door):
    guess(client, door, times=9)
    assert logged_in(log_in(client, door, "charlie", PASSWORD))
    client.logout()

    guess(client, door, times=9)
    assert logged_in(log_in(client, door, "charlie", PASSWORD))


def test_failures_at_every_door_count_together(client, charlie_staff):
    guess(client, "/accounts/login/", times=4)
    guess(client, "/admin/login/", times=3)
    guess(client, "/api-auth/login/", times=3)

    assert log_in(client, "/admin/login/", "charlie", PASSWORD).status_code == 429


def test_a_script_gets_the_lockout_as_json(client, charlie_staff):
    guess(client, "/api-auth/login/")

    response = log_in(client, "/api-auth/login/", "charlie", PASSWORD, HTTP_ACCEPT="application/json")

    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    error = response.json()["error"]
    assert error["code"] == "login_locked_out"
    assert "15 minutes" in error["message"]


@pytest.mark.parametrize("door", DOORS)
def test_the_guesser_cannot_lock_the_user_out_from_another_address(client, charlie_staff, door):
    guess(client, door)
    assert log_in(client, door, "charlie", PASSWORD).status_code == 429

    assert logged_in(log_in(client, door, "charlie", PASSWORD, address=ELSEWHERE))


def test_other_users_still_log_in_from_the_guessers_address(client, charlie_staff, bob):
    guess(client, "/admin/login/")

    assert logged_in(log_in(client, "/accounts/login/", "bob", "bob-pass-123"))


def test_the_lockout_ends_after_the_cool_off(client, charlie_staff):
    guess(client, "/admin/login/")
    assert log_in(client, "/admin/login/", "charlie", PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))

    assert logged_in(log_in(client, "/admin/login/", "charlie", PASSWORD))


def test_the_admin_lists_the_lockout_and_clearing_it_lets_the_user_in(client, charlie_staff, django_user_model):
    guess(client, "/admin/login/")
    admin = APIClient()
    admin.force_login(django_user_model.objects.create_superuser("root", password="root-pass-123"))

    listing = admin.get("/admin/axes/accessattempt/")

    assert listing.status_code == 200
    page = listing.content.decode()
    assert "charlie" in page and GUESSER in page
    attempt = AccessAttempt.objects.get(username="charlie")
    assert attempt.failures_since_start == 10
    cleared = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert cleared.status_code == 302
    assert logged_in(log_in(client, "/admin/login/", "charlie", PASSWORD))


def test_behind_the_tls_proxy_the_address_is_the_hop_the_proxy_appended(client, charlie_staff, settings):
    settings.BEHIND_TLS_PROXY = True

    def via_proxy(password: str, forwarded_for: str):
        # Every request reaches us from the proxy's own address.
        proxy = "127.0.0.1"
        return log_in(client, "/admin/login/", "charlie", password, address=proxy, HTTP_X_FORWARDED_FOR=forwarded_for)

    for i in range(10):
        # The guesser makes up a first hop each time; the proxy appends the real one.
        via_proxy(f"wrong-{i}", f"10.0.0.{i}, {GUESSER}")

    assert via_proxy(PASSWORD, GUESSER).status_code == 429
    assert logged_in(via_proxy(PASSWORD, ELSEWHERE))
    assert AccessAttempt.objects.get().ip_address == GUESSER


def test_without_the_proxy_setting_x_forwarded_for_is_ignored(client, charlie_staff, settings):
    settings.BEHIND_TLS_PROXY = False

    for i in range(10):
        log_in(client, "/admin/login/", "charlie", f"wrong-{i}", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")

    assert log_in(client, "/admin/login/", "charlie", PASSWORD, HTTP_X_FORWARDED_FOR=ELSEWHERE).status_code == 429


def test_tokens_are_not_logins_and_keep_working_for_a_locked_out_user(client, charlie_staff):
    guess(client, "/admin/login/")
    token = Token.objects.create(user=charlie_staff)
    api = APIClient(REMOTE_ADDR=GUESSER)

    for _ in range(12):
        api.credentials(HTTP_AUTHORIZATION="Token wrong-token-0000")
        assert api.get("/voice/sessions").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert api.get("/voice/sessions").status_code == 200
    assert AccessAttempt.objects.get().failures_since_start == 10  # bad tokens were not counted
