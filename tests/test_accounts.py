"""The account pages for every user: log in, log out (POST), change password; the admin stays staff-only."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser():
    """A client that checks CSRF tokens, as the middleware does for a real browser."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def alice_browser(browser, alice):
    """alice, logged in through the login page."""
    log_in(browser, "alice", "alice-pass-123")
    return browser


def csrf_token(response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode()).group(1)


def log_in(browser, username, password, *, next_path=""):
    page = browser.get("/accounts/login/", {"next": next_path} if next_path else {})
    return browser.post(
        "/accounts/login/",
        {"csrfmiddlewaretoken": csrf_token(page), "username": username, "password": password, "next": next_path},
    )


def change_password(browser, old, new):
    form = browser.get("/accounts/password_change/")
    assert form.status_code == 200
    fields = {"old_password": old, "new_password1": new, "new_password2": new}
    return browser.post("/accounts/password_change/", {"csrfmiddlewaretoken": csrf_token(form), **fields})


def logged_in_user_id(client):
    return client.session.get(SESSION_KEY)


# --- Log in ---------------------------------------------------------------------------------------------


def test_the_login_page_is_in_the_playground_look_under_the_strict_csp(browser):
    response = browser.get("/accounts/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/static/playground/playground.css"' in html
    assert 'id="id_username"' in html and 'id="id_password"' in html
    assert "<script" not in html and "style=" not in html  # nothing the strict CSP would refuse
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert 'href="/accounts/login/">Log in</a>' in html  # the header offers it


def test_a_non_staff_user_logs_in_and_lands_on_the_playground(browser, alice):
    response = log_in(browser, "alice", "alice-pass-123")

    assert response.status_code == 302
    assert response["Location"] == "/playground/"
    assert logged_in_user_id(browser) == str(alice.pk)
    assert browser.get("/playground/").status_code == 200


def test_login_follows_next_on_this_site(browser, alice):
    response = log_in(browser, "alice", "alice-pass-123", next_path="/api/docs/")

    assert response["Location"] == "/api/docs/"


def test_login_ignores_a_next_on_another_site(browser, alice):
    response = log_in(browser, "alice", "alice-pass-123", next_path="https://evil.example/")

    assert response["Location"] == "/playground/"


def test_a_wrong_password_says_so_and_logs_nobody_in(browser, alice):
    response = log_in(browser, "alice", "wrong-password")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct username and password" in html
    assert 'value="alice"' in html  # the username stays filled in
    assert logged_in_user_id(browser) is None


def test_an_inactive_account_cannot_log_in(browser, alice):
    alice.is_active = False
    alice.save()

    response = log_in(browser, "alice", "alice-pass-123")

    assert response.status_code == 200
    assert logged_in_user_id(browser) is None


def test_login_without_the_csrf_token_is_refused(browser, alice):
    response = browser.post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"})

    assert response.status_code == 403
    assert logged_in_user_id(browser) is None


def test_a_logged_in_user_who_opens_the_login_page_goes_to_the_playground(client, alice):
    client.force_login(alice)

    response = client.get("/accounts/login/")

    assert response.status_code == 302
    assert response["Location"] == "/playground/"


# --- Log out --------------------------------------------------------------------------------------------


def test_the_playground_header_offers_log_out_by_post_and_change_password(client, alice):
    client.force_login(alice)

    html = client.get("/playground/").content.decode()

    assert re.search(r'<form method="post" action="/accounts/logout/"[^>]*>\s*<input type="hidden" name="csrf', html)
    assert 'href="/accounts/password_change/"' in html
    assert 'href="/admin/"' not in html  # alice is not staff


def test_logout_is_a_post(client, alice):
    client.force_login(alice)

    response = client.get("/accounts/logout/")

    assert response.status_code == 405
    assert logged_in_user_id(client) == str(alice.pk)


def test_logout_by_post_ends_the_login(alice_browser):
    page = alice_browser.get("/playground/")

    response = alice_browser.post("/accounts/logout/", {"csrfmiddlewaretoken": csrf_token(page)})

    assert response.status_code == 200
    assert "You are logged out" in response.content.decode()
    assert logged_in_user_id(alice_browser) is None
    assert alice_browser.get("/playground/")["Location"] == "/accounts/login/?next=/playground/"


# --- Change password ------------------------------------------------------------------------------------


def test_changing_the_password_needs_a_login(client):
    response = client.get("/accounts/password_change/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/password_change/"


def test_a_user_changes_their_password_and_stays_logged_in(alice_browser, alice):
    response = change_password(alice_browser, "alice-pass-123", "a-new-and-long-secret-7")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_change/done/"
    assert "Your password has been changed" in alice_browser.get(response["Location"]).content.decode()
    assert alice_browser.get("/playground/").status_code == 200  # the session survived the change
    alice.refresh_from_db()
    assert alice.check_password("a-new-and-long-secret-7")


def test_a_wrong_old_password_changes_nothing(alice_browser, alice):
    response = change_password(alice_browser, "not-it", "a-new-and-long-secret-7")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Your old password was entered incorrectly" in html
    alice.refresh_from_db()
    assert alice.check_password("alice-pass-123")


def test_a_weak_new_password_is_refused_with_the_reason(alice_browser, alice):
    response = change_password(alice_browser, "alice-pass-123", "12345678")

    assert response.status_code == 200
    assert "This password is too common" in response.content.decode()


# --- The admin stays staff-only -------------------------------------------------------------------------


def test_the_admin_login_refuses_a_non_staff_user(browser, alice):
    page = browser.get("/admin/login/")

    response = browser.post(
        "/admin/login/",
        {"csrfmiddlewaretoken": csrf_token(page), "username": "alice", "password": "alice-pass-123", "next": "/admin/"},
    )

    assert response.status_code == 200
    assert "for a staff account" in response.content.decode()
    assert logged_in_user_id(browser) is None


def test_a_logged_in_non_staff_user_cannot_open_the_admin(client, alice):
    client.force_login(alice)

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_log_in_through_the_same_page_and_see_the_admin_link(browser, charlie_staff):
    response = log_in(browser, "charlie", "charlie-pass-123")

    assert response["Location"] == "/playground/"
    assert 'href="/admin/"' in browser.get("/playground/").content.decode()
    assert browser.get("/admin/").status_code == 200
