"""Two of Django's middleware, doing on every request only what that request needs.

Both ran work on every API call that nearly no API call uses (issue 10: together 4 % of the CPU
of ``POST /voice/sessions``):

- Django's MessageMiddleware builds the message store (a cookie store, its signer and a session
  store) for every request; here it is built the first time a view or template touches it.
- Django's CSP middleware builds the policy header from the settings on every response; here a
  response that used no nonce gets the policy built once from the settings (rebuilt when a test
  changes them). A nonce, or a view's own policy, still goes through Django's middleware.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.core.signals import setting_changed
from django.middleware import csp
from django.utils.csp import CSP, build_policy
from django.utils.functional import SimpleLazyObject, empty


class LazyMessageMiddleware(MessageMiddleware):
    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response  # never touched: nothing to store, no cookie to update
        return super().process_response(request, response)


@functools.cache
def _policies_without_nonce() -> tuple[tuple[str, str], ...]:
    configs = ((CSP.HEADER_ENFORCE, settings.SECURE_CSP), (CSP.HEADER_REPORT_ONLY, settings.SECURE_CSP_REPORT_ONLY))
    return tuple((str(header), build_policy(config)) for header, config in configs if config)


def _forget_policies(*, setting: str, **kwargs) -> None:
    if setting in ("SECURE_CSP", "SECURE_CSP_REPORT_ONLY"):
        _policies_without_nonce.cache_clear()


setting_changed.connect(_forget_policies, dispatch_uid="voiceagent_csp_policies")


class ContentSecurityPolicyMiddleware(csp.ContentSecurityPolicyMiddleware):
    def process_response(self, request, response):
        uses_settings = not hasattr(response, "_csp_config") and not hasattr(response, "_csp_ro_config")
        if uses_settings and not csp.get_nonce(request):
            for header, policy in _policies_without_nonce():
                if header not in response:  # as Django: a policy the response carries is left alone
                    response.headers[header] = policy
        return super().process_response(request, response)
