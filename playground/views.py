"""The playground page and its partials.

One template, ``playground/page.html``, holds the page and its partials
(``{% partialdef %}``). Each partial has a URL; an htmx request gets the
partial alone, a plain request the whole page with the same data, so every
link works without JavaScript. Polled partials answer 286 (htmx: stop
polling) once nothing can change without this page asking.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from playground import selectors
from sessions import selectors as sessions_selectors
from sessions.models import AgentType, VoiceSession
from sessions.platform import session_runs_simulated
from sessions.selectors import session_visible_to
from voiceagent.logging import flush_log_writes, readable_log_line
from voiceagent.logtail import tail_lines

PAGE = "playground/page.html"
LOG_TAIL_LINES = 50
# Stands in for a session id in URL templates handed to the page's script.
URL_PLACEHOLDER = uuid.UUID(int=0)

# Served from node_modules (package.json, `npm ci`) by playground.finders.NpmModulesFinder.
SDK_MODULE = "vendor/elevenlabs-client/platform/web/index.js"
LIVEKIT_MODULE = "vendor/livekit-client/livekit-client.esm.mjs"
WORKLETS = {
    "rawAudioProcessor": "vendor/elevenlabs-client-worklets/rawAudioProcessor.js",
    "audioConcatProcessor": "vendor/elevenlabs-client-worklets/audioConcatProcessor.js",
}
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL", "pt-BR", "ja-JP"]

View = Callable[..., HttpResponse]


def login_required_htmx(view: View) -> View:
    """Like login_required; an htmx request is sent to the login page as a whole-page redirect.

    (A plain 302 would make htmx swap the login form into a status badge.)
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            login = resolve_url(settings.LOGIN_URL)
            return HttpResponseClientRedirect(f"{login}?next={reverse('playground:page')}")
        return redirect_to_login(request.get_full_path())

    return wrapper


def _selected_session(request: HttpRequest) -> VoiceSession | None:
    raw = request.GET.get("session")
    if not raw:
        return None
    try:
        session_id = uuid.UUID(raw)
    except ValueError:
        raise Http404("No such session.") from None
    return session_visible_to(request.user, session_id)


# --- Context, one function per partial ------------------------------------------------------------


def _status_context(session: VoiceSession | None) -> dict[str, Any]:
    live = selectors.session_live_state(session=session)
    client_error = selectors.latest_client_error(session=session) if session else ""
    version = ""
    if session is not None:
        seen = f"{session.pk}|{session.status}|{session.updated_at.isoformat()}|{live.label}|{client_error}"
        version = hashlib.sha256(seen.encode()).hexdigest()[:16]
    return {
        "session": session,
        "live": live,
        "status_polling": session is not None and not session.is_terminal,
        "status_version": version,
        "client_error": client_error,
        "simulation_mode": session_runs_simulated(False),
    }


def _transcript_context(session: VoiceSession | None) -> dict[str, Any]:
    return {
        "session": session,
        "transcript": selectors.session_live_transcript(session=session) if session else [],
    }


def _timeline_context(session: VoiceSession | None) -> dict[str, Any]:
    events = sessions_selectors.session_timeline(session) if session else []
    return {
        "session": session,
        "timeline": [{"event": event, "summary": selectors.event_summary(event)} for event in events],
        "timeline_polling": selectors.session_expects_updates(session=session),
    }


def _session_context(session: VoiceSession | None) -> dict[str, Any]:
    return {**_status_context(session), **_transcript_context(session), **_timeline_context(session)}


def _recent_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "recent_sessions": selectors.recent_sessions_of(request.user),
        "recent_polling": selectors.user_has_open_session(request.user),
    }


def _logs_context(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_staff:
        return {"log_lines": None}
    flush_log_writes()  # lines this worker has queued are in the file before it is read
    return {
        # JSON lines (LOG_FORMAT=json) are shown in the text form; the file may hold both.
        "log_lines": [readable_log_line(line) for line in tail_lines(settings.LOG_FILE, LOG_TAIL_LINES)],
        "log_file": settings.LOG_FILE.name,
        "logs_polling": selectors.user_has_open_session(request.user),
    }


def _script_urls() -> tuple[SafeString, dict[str, str], bool]:
    """The import map (JSON, safe inside <script>), the worklet URLs, and whether the SDK is installed."""
    try:
        imports = {"@elevenlabs/client": static(SDK_MODULE), "livekit-client": static(LIVEKIT_MODULE)}
        worklets = {name: static(path) for name, path in WORKLETS.items()}
    except ValueError:  # a manifest storage without the npm files: `npm ci` was not run before collectstatic
        return mark_safe('{"imports": {}}'), {}, False  # noqa: S308 - a constant
    installed = finders.find(SDK_MODULE) is not None or staticfiles_storage.exists(SDK_MODULE)
    text = json.dumps({"imports": imports})
    # The same escapes as json_script: nothing in the JSON can close the <script>.
    text = text.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
    return mark_safe(text), worklets, installed  # noqa: S308 - escaped above


def _page_context(request: HttpRequest, session: VoiceSession | None) -> dict[str, Any]:
    import_map, worklets, sdk_installed = _script_urls()
    placeholder = str(URL_PLACEHOLDER)
    return {
        **_session_context(session),
        **_recent_context(request),
        **_logs_context(request),
        "agent_types": AgentType.choices,
        "locales": LOCALES,
        "default_customer_id": f"playground-{request.user.get_username()}",
        "import_map": import_map,
        "sdk_installed": sdk_installed,
        "playground_config": {
            "startUrl": reverse("start-session"),
            "eventsUrl": reverse("session-events", args=[placeholder]),
            "endUrl": reverse("session-end", args=[placeholder]),
            "logsUrl": reverse("client-logs"),
            "statusUrl": reverse("playground:status", args=[placeholder]),
            "transcriptUrl": reverse("playground:transcript", args=[placeholder]),
            "timelineUrl": reverse("playground:timeline", args=[placeholder]),
            "pageUrl": reverse("playground:page"),
            "placeholder": placeholder,
            "workletPaths": worklets,
        },
    }


def _respond(
    request: HttpRequest,
    partial: str,
    context: dict[str, Any],
    *,
    session: VoiceSession | None = None,
    keep_polling: bool = True,
) -> HttpResponse:
    """The partial for htmx (286 when its polling should stop), else the whole page."""
    if not request.htmx:
        return render(request, PAGE, _page_context(request, session))
    if keep_polling:
        return render(request, f"{PAGE}#{partial}", context)
    return HttpResponseStopPolling(render_to_string(f"{PAGE}#{partial}", context, request=request))


# --- Views ----------------------------------------------------------------------------------------


@require_safe
@login_required_htmx
def playground_page(request: HttpRequest) -> HttpResponse:
    session = _selected_session(request)
    return render(request, PAGE, _page_context(request, session))


@require_safe
@login_required_htmx
def session_status(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    """The live status (and the error panel); polled while the session is open, 286 once it is over.

    A poll that carries the version it already shows gets 204 (htmx swaps
    nothing), so an unchanged status is not re-announced to screen readers.
    """
    session = session_visible_to(request.user, session_id)
    context = _status_context(session)
    if request.htmx and not session.is_terminal and request.GET.get("v") == context["status_version"]:
        return HttpResponse(status=204)
    return _respond(request, "status", context, session=session, keep_polling=not session.is_terminal)


@require_safe
@login_required_htmx
def session_transcript(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = session_visible_to(request.user, session_id)
    return _respond(request, "transcript", _transcript_context(session), session=session)


@require_safe
@login_required_htmx
def session_timeline(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = session_visible_to(request.user, session_id)
    context = _timeline_context(session)
    return _respond(request, "timeline", context, session=session, keep_polling=context["timeline_polling"])


@require_safe
@login_required_htmx
def recent_sessions(request: HttpRequest) -> HttpResponse:
    """The user's latest sessions; polled while one of them is open, then 286."""
    context = _recent_context(request)
    return _respond(request, "recent", context, keep_polling=context["recent_polling"])


@require_safe
@login_required_htmx
def log_tail(request: HttpRequest) -> HttpResponse:
    """The log file's last lines, for staff only; polled while one of their sessions is open."""
    if not request.user.is_staff:
        raise PermissionDenied("The log is for staff only.")
    context = _logs_context(request)
    return _respond(request, "logs", context, keep_polling=context["logs_polling"])
