"""The project's message and CSP middleware answer as Django's own do, doing less when a request needs less."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib import messages
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import HttpResponse
from django.middleware.csp import ContentSecurityPolicyMiddleware as DjangoCsp
from django.test import RequestFactory
from django.utils.csp import CSP, build_policy
from django.utils.functional import empty

from voiceagent.middleware import ContentSecurityPolicyMiddleware, LazyMessageMiddleware

pytestmark = pytest.mark.django_db


def answered(middleware_class, view, request=None):
    request = request or RequestFactory().get("/x")
    return request, middleware_class(view)(request)


def test_the_api_gets_the_policy_djangos_middleware_gives(alice_api):
    response = alice_api.post("/voice/sessions", {"customer_id": "cust-csp"}, format="json")
    assert response.status_code == 201
    assert response[CSP.HEADER_ENFORCE] == build_policy(settings.SECURE_CSP)
    assert CSP.HEADER_REPORT_ONLY not in response


@pytest.mark.parametrize("uses_nonce", [False, True])
def test_headers_match_djangos_with_and_without_a_nonce(settings, uses_nonce):
    settings.SECURE_CSP_REPORT_ONLY = {"default-src": [CSP.NONE], "report-uri": "/csp-report"}

    def view(request):
        body = f"nonce {request._csp_nonce}" if uses_nonce else "no nonce"
        return HttpResponse(body)

    ours_request, ours = answered(ContentSecurityPolicyMiddleware, view)
    _, django = answered(DjangoCsp, view)
    for header in (CSP.HEADER_ENFORCE, CSP.HEADER_REPORT_ONLY):
        if uses_nonce:
            # Each request has its own nonce: the policies differ in it and nowhere else.
            nonce = str(ours_request._csp_nonce)
            assert f"'nonce-{nonce}'" in ours[CSP.HEADER_ENFORCE]
            assert ours[header].replace(nonce, "N").split("'nonce-")[0] == django[header].split("'nonce-")[0]
        else:
            assert ours[header] == django[header]


def test_a_changed_setting_changes_the_policy(settings):
    def view(request):
        return HttpResponse("ok")

    settings.SECURE_CSP = {"default-src": [CSP.SELF]}
    assert answered(ContentSecurityPolicyMiddleware, view)[1][CSP.HEADER_ENFORCE] == "default-src 'self'"
    settings.SECURE_CSP = {"default-src": [CSP.NONE], "img-src": ["data:"]}
    assert answered(ContentSecurityPolicyMiddleware, view)[1][CSP.HEADER_ENFORCE] == "default-src 'none'; img-src data:"


def test_a_policy_the_response_carries_is_left_alone():
    def view(request):
        response = HttpResponse("ok")
        response.headers[CSP.HEADER_ENFORCE] = "default-src 'none'"
        return response

    assert answered(ContentSecurityPolicyMiddleware, view)[1][CSP.HEADER_ENFORCE] == "default-src 'none'"


def with_session(request):
    request.session = SessionStore()
    return request


def test_untouched_messages_cost_no_store_and_no_cookie():
    request, response = answered(
        LazyMessageMiddleware, lambda request: HttpResponse("ok"), with_session(RequestFactory().get("/x"))
    )
    assert "messages" not in response.cookies
    assert request._messages._wrapped is empty  # the store was never built


def test_a_message_added_is_stored_as_djangos_middleware_stores_it():
    def view(request):
        messages.success(request, "Saved.")
        return HttpResponse("ok")

    _, ours = answered(LazyMessageMiddleware, view, with_session(RequestFactory().get("/x")))
    _, django = answered(MessageMiddleware, view, with_session(RequestFactory().get("/x")))
    assert ours.cookies["messages"].value and ours.cookies.keys() == django.cookies.keys()

    # The next request reads it back.
    def reader(request):
        return HttpResponse("|".join(str(m) for m in messages.get_messages(request)))

    follow = with_session(RequestFactory().get("/y", HTTP_COOKIE=f"messages={ours.cookies['messages'].value}"))
    follow.COOKIES["messages"] = ours.cookies["messages"].value
    assert answered(LazyMessageMiddleware, reader, follow)[1].content == b"Saved."
