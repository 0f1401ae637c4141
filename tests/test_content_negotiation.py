"""The API's content negotiation chooses exactly what DRF's own does, for every kind of Accept header."""

from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory

from voiceagent.rendering import ContentNegotiation

ACCEPTS = [
    None,  # no header at all
    "*/*",
    "application/json",
    "",
    "application/json; indent=4",
    "application/json, text/html",
    "text/html",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # a browser
    "application/*",
    "text/plain",
    "*/*; q=0.1, text/html",
    "image/png",
]


def choice(negotiation, accept: str | None, query: str = "", format_suffix=None):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/voice/sessions{query}", **headers))
    renderers = [renderer() for renderer in api_settings.DEFAULT_RENDERER_CLASSES]
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, format_suffix)
    except (NotAcceptable, Http404) as refused:  # no renderer for the Accept header; an unknown ?format=
        return type(refused).__name__
    return type(renderer), media_type


@pytest.mark.parametrize("query", ["", "?format=json", "?format=api", "?format=xml", "?page=2"])
@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_choice_is_drfs_own(accept, query):
    assert choice(ContentNegotiation(), accept, query) == choice(DefaultContentNegotiation(), accept, query)


@pytest.mark.parametrize("suffix", ["json", "api"])
def test_a_format_suffix_is_drfs_own_choice(suffix):
    assert choice(ContentNegotiation(), "*/*", format_suffix=suffix) == choice(
        DefaultContentNegotiation(), "*/*", format_suffix=suffix
    )


def test_it_is_the_apis_negotiation():
    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is ContentNegotiation
