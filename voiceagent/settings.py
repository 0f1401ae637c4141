"""Settings for voiceagent, read from the environment (see .env.example).

Values come from the process environment first, then `.env.local`, then `.env`
(the first place that sets a variable wins; both files are looked for in the
project's root, or in VOICEAGENT_DOTENV_DIR). Tests set VOICEAGENT_READ_DOTENV=0
so that a developer's `.env` never changes what the suite sees.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import environ
from django.utils.csp import CSP

from voiceagent.config import (
    ConfigurationError,
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_rate,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if os.environ.get("VOICEAGENT_READ_DOTENV", "1") != "0":
    _DOTENV_DIR = Path(os.environ.get("VOICEAGENT_DOTENV_DIR", BASE_DIR))
    for name in (".env.local", ".env"):
        if (_DOTENV_DIR / name).is_file():
            env.read_env(_DOTENV_DIR / name, overwrite=False)

DEBUG = env_bool(env, "DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ConfigurationError("SECRET_KEY is not set; it is required when DEBUG is off.")

# Where clients reach this service (https://voice.example.com): the simulated agent's WebSocket URLs
# and the address its post-call webhooks go to are built from it, never from a request's Host header.
# With DEBUG on and nothing set, the request's own origin stands in (development only).
PUBLIC_BASE_URL = env_url(env, "PUBLIC_BASE_URL", default="", example="https://voice.example.com", allow_empty=True)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A CSRF failure on an API path answers JSON in the error shape; elsewhere Django's page.
CSRF_FAILURE_VIEW = "voiceagent.views.csrf_failure"

INSTALLED_APPS = [
    "daphne",  # makes `runserver` serve ASGI (HTTP and the simulator's WebSocket)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "channels",
    "axes",
    "sessions.apps.VoiceSessionsConfig",
    "elevenlabs.apps.ElevenLabsConfig",
    "playground.apps.PlaygroundConfig",
]
# The simulated ElevenLabs agent is an app of its own: production may leave it out (SIMULATOR_ENABLED=false),
# and then a session asking for simulation is refused (400 simulation_unavailable) and its WebSocket is not routed.
SIMULATOR_ENABLED = env_bool(env, "SIMULATOR_ENABLED", default=True)
if SIMULATOR_ENABLED:
    INSTALLED_APPS.append("elevenlabs.simulator.apps.SimulatorConfig")

MIDDLEWARE = [
    "voiceagent.timing.ServerTimingMiddleware",
    # A locked or unreachable database: 503 with Retry-After instead of a 500 (see voiceagent/faults.py).
    "voiceagent.faults.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's messages and CSP, building the message store and the policy only when a request needs them.
    "voiceagent.middleware.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "voiceagent.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so that it sees the login views' failed attempts (django-axes; see Login throttle below).
    "axes.middleware.AxesMiddleware",
]

if DEBUG:
    # Development only: the request's own origin stands in for an unset PUBLIC_BASE_URL.
    MIDDLEWARE.insert(0, "voiceagent.public_url.RequestOriginMiddleware")

ROOT_URLCONF = "voiceagent.urls"
WSGI_APPLICATION = "voiceagent.wsgi.application"
ASGI_APPLICATION = "voiceagent.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # voiceagent is the project, not an installed app: its own pages (voiceagent/faults.py's 503,
        # login_guard.py's admin lockout) are found through DIRS.
        "DIRS": [BASE_DIR / "voiceagent" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {"default": env_database(env, "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# How long a request waits for the database's write lock (SQLite), a row or table lock (PostgreSQL's
# lock_timeout), a pooled connection or a new connection, before it gives up and answers 503 with
# Retry-After. /healthz probes the write lock with a much shorter wait (HEALTH_WRITE_PROBE_SECONDS).
DATABASE_LOCK_TIMEOUT_SECONDS = env_float(env, "DATABASE_LOCK_TIMEOUT_SECONDS", default=20.0, minimum=0.5)
HEALTH_WRITE_PROBE_SECONDS = min(1.0, DATABASE_LOCK_TIMEOUT_SECONDS)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker processes share one file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front so read-then-write
    # transactions wait (up to `timeout` seconds) instead of failing at once,
    # and our backend queues each process's writers in Python first.
    DATABASES["default"]["ENGINE"] = "voiceagent.db.sqlite3"
    # Kept open between requests: one per HTTP thread (HTTP_THREADS) at most. Opening one per request
    # cost 3 ms of CPU in a 6.4 ms create (the connect, the PRAGMAs, and the WAL checkpoint of the close).
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": DATABASE_LOCK_TIMEOUT_SECONDS,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # Kept open between requests, one per thread that uses the database: the HTTP_THREADS of each
    # worker (voiceagent/asgi.py) and Channels' few database threads, so workers x (HTTP_THREADS + 6)
    # bounds them. Django's psycopg pool, taken and given back on every request, cost 4.6 ms of CPU per
    # GET under load against 1.9 ms for kept connections (issue 10). No health check before each
    # request (a third round trip on a GET): a connection that broke (a PostgreSQL restart) answers
    # its request 503 (voiceagent/faults.py), is closed for the error, and the next request reconnects.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    # libpq counts whole seconds and treats anything under 2 as 2.
    _options.setdefault("connect_timeout", max(2, math.ceil(DATABASE_LOCK_TIMEOUT_SECONDS)))
    # Parameters travel apart from the SQL (server-side binding) and a statement run a few times is
    # prepared on the server, as psycopg does by default and the reference's SQLAlchemy does: Django's
    # default binds client-side, quoting every value into the text PostgreSQL then parses and plans
    # anew. Session create went from 0.97x to 1.2-1.3x the reference (issue 10). PgBouncer in
    # transaction mode before 1.21 cannot keep prepared statements: DATABASE_PREPARED_STATEMENTS=false.
    _options.setdefault("server_side_binding", True)
    if env_bool(env, "DATABASE_PREPARED_STATEMENTS", default=True):
        _options.setdefault("prepare_threshold", 5)
    _lock_timeout = f"-c lock_timeout={int(DATABASE_LOCK_TIMEOUT_SECONDS * 1000)}"
    _options["options"] = f"{_options['options']} {_lock_timeout}" if _options.get("options") else _lock_timeout
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Serving ------------------------------------------------------------------------
# Threads per worker process that run Django's views for HTTP (voiceagent/asgi.py). On SQLite, one:
# a second thread waits for the GIL while the first holds the single write lock, and every writer of
# every worker waits behind that (2 workers, wrk, 32 connections: create 376 req/s with one thread,
# 195 with two or four; GET 1247 against 1055). On PostgreSQL, four: extra threads cost nothing
# measurable there and let a worker overlap requests that wait on ElevenLabs.
HTTP_THREADS = env_int(
    env, "HTTP_THREADS", default=1 if DATABASES["default"]["ENGINE"] == "voiceagent.db.sqlite3" else 4, minimum=1
)

# How long a worker process trusts what it learnt of an API token (voiceagent/authentication.py):
# a token deleted in the admin stops working everywhere within this many seconds. 0: ask every time.
TOKEN_CACHE_SECONDS = env_float(env, "TOKEN_CACHE_SECONDS", default=5.0, minimum=0.0)

# --- Cache (throttles) ------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Per process: throttles are then per worker. Set REDIS_URL to share them.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, i18n, static -------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Everyone logs in through our own pages (voiceagent/urls.py, templates in playground/); the admin's
# login stays for staff only.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "playground:page"

# --- Login throttle (django-axes) ---------------------------------------------------------------
# Every door that calls authenticate() with a password (the admin, /accounts/login/, DRF's
# api-auth/) counts failures per username *and* client address: after LOGIN_FAILURE_LIMIT
# failures that pair is refused for LOGIN_LOCKOUT_MINUTES (429), while the same user from another
# address, and other users from that address, still get in. Lockouts are listed (and cleared) in
# the admin under Axes → Access attempts. Token-authenticated API calls are not logins.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: it refuses a locked-out pair before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env_int(env, "LOGIN_FAILURE_LIMIT", default=10, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_float(env, "LOGIN_LOCKOUT_MINUTES", default=15.0, minimum=0.1)
AXES_ENABLED = True
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "voiceagent.login_guard.client_address"
AXES_LOCKOUT_CALLABLE = "voiceagent.login_guard.lockout_response"
# The lockout page for every door but the admin (which gets one in its own look).
LOGIN_LOCKOUT_TEMPLATE = "playground/accounts/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# Successful logins are not written to a table of their own: one write less per login.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no "AXES: BEGIN" line at every start; lockouts are still logged

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic (run by `make serve`, scripts/serve.sh) puts the files WhiteNoise serves.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# The playground's browser client comes from npm (package.json, installed by `npm ci`) and is
# served as our own static files, no CDN: the SDK's ES modules, its audio worklets (loaded by
# path, so voice works under the strict CSP) and livekit-client's ESM build. Only their .js and
# .mjs files are served, collected without their source-map comments (playground/finders.py);
# until `npm ci` has run the playground says the client is missing.
_NODE_MODULES = BASE_DIR / "node_modules"
NPM_STATIC_DIRS = [
    ("vendor/elevenlabs-client", _NODE_MODULES / "@elevenlabs" / "client" / "dist"),
    ("vendor/elevenlabs-client-worklets", _NODE_MODULES / "@elevenlabs" / "client" / "worklets"),
    ("vendor/livekit-client", _NODE_MODULES / "livekit-client" / "dist"),
]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "playground.finders.NpmModulesFinder",
]
# Never served by URL (so no MEDIA_URL): a call's recording goes out through /voice/sessions/<id>/audio,
# which checks who asks.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security (production profile when DEBUG is off) --------------------------------
# A reverse proxy terminates TLS in front of us: its X-Forwarded-Proto says https, and the last
# X-Forwarded-For hop (the one it appended) is the client's address for the login throttle.
BEHIND_TLS_PROXY = env_bool(env, "BEHIND_TLS_PROXY", default=False)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool(env, "SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int(env, "SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool(env, "SECURE_HSTS_PRELOAD", default=False)
    # Health checks come from the load balancer over plain HTTP, and Prometheus scrapes each server
    # directly inside the network (its bearer token is the metrics' own guard).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^api/healthz$", r"^metrics$"]
    if BEHIND_TLS_PROXY:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# Strict CSP: scripts and styles from our own origin or with this response's nonce.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF, "ws:", "wss:"],
    "media-src": [CSP.SELF, "blob:"],
    "worker-src": [CSP.SELF, "blob:"],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# --- REST framework and OpenAPI ----------------------------------------------------------
# Bounded JSON (voiceagent/jsonlimits.py): deeper nesting is refused with 400 in every JSON body we
# parse (API, webhook, WebSocket frames); API bodies larger than API_MAX_BODY_BYTES are refused with 413.
JSON_MAX_DEPTH = env_int(env, "JSON_MAX_DEPTH", default=64, minimum=8)

REST_FRAMEWORK = {
    # Depth, size and number limits on JSON bodies; forms stay as DRF has them (the browsable API).
    "DEFAULT_PARSER_CLASSES": [
        "voiceagent.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous or bad-token call gets 401 with WWW-Authenticate.
        "voiceagent.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "voiceagent.rendering.BrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "voiceagent.rendering.ContentNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "voiceagent.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "client_logs": env.str("CLIENT_LOG_THROTTLE", default="120/min"),
        # Sessions one user may create (POST /voice/sessions, /api/voice/sessions, /api/elevenlabs start).
        "session_create": env_rate(env, "SESSION_CREATE_THROTTLE", default="1200/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "voiceagent API",
    "DESCRIPTION": "System of record for voice-agent sessions on ElevenLabs Agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page need a login like the rest of the API (the docs page sends an
    # anonymous browser to the login page, voiceagent/views.py).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two "status" choice sets (the session's and the browser client's) need names of their own,
    # or `check --deploy` warns (drf_spectacular.W001).
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "sessions.models.Status",
        "ClientConnectionStatusEnum": ["connecting", "connected", "disconnecting", "disconnected"],
    },
}

# --- ElevenLabs ------------------------------------------------------------------------------
ELEVENLABS_API_KEY = env.str("ELEVENLABS_API_KEY", default="").strip()
ELEVENLABS_SUPPORT_AGENT_ID = env.str("ELEVENLABS_SUPPORT_AGENT_ID", default="").strip()
ELEVENLABS_SALES_AGENT_ID = env.str("ELEVENLABS_SALES_AGENT_ID", default="").strip()
ELEVENLABS_WEBHOOK_SECRET = env.str("ELEVENLABS_WEBHOOK_SECRET", default="").strip()
# What ElevenLabs sends as "Authorization: Bearer <token>" when it asks us about an inbound call
# (POST /elevenlabs/conversation-init) or calls a server tool (POST /elevenlabs/tools/<name>).
ELEVENLABS_TOOLS_TOKEN = env.str("ELEVENLABS_TOOLS_TOKEN", default="").strip()
# Their bodies are a few identifiers and a tool's arguments: anything larger is refused with 413.
ELEVENLABS_TOOLS_MAX_BYTES = env_int(env, "ELEVENLABS_TOOLS_MAX_BYTES", default=16 * 1024, minimum=1024)
ELEVENLABS_BASE_URL = env_url(env, "ELEVENLABS_BASE_URL", default="https://api.elevenlabs.io")
ELEVENLABS_CONNECT_TIMEOUT = env_float(env, "ELEVENLABS_CONNECT_TIMEOUT", default=3.05, minimum=0.1)
ELEVENLABS_READ_TIMEOUT = env_float(env, "ELEVENLABS_READ_TIMEOUT", default=8.0, minimum=0.1)
ELEVENLABS_MAX_ATTEMPTS = env_int(env, "ELEVENLABS_MAX_ATTEMPTS", default=4, minimum=1)
ELEVENLABS_RETRY_BUDGET_SECONDS = env_float(env, "ELEVENLABS_RETRY_BUDGET_SECONDS", default=10.0, minimum=0.0)
ELEVENLABS_CONNECTION_TYPE = env_choice(
    env, "ELEVENLABS_CONNECTION_TYPE", default="webrtc", choices={"webrtc", "websocket"}
)
ELEVENLABS_OUTBOUND_PROVIDER = env_choice(
    env, "ELEVENLABS_OUTBOUND_PROVIDER", default="twilio", choices={"twilio", "sip_trunk"}
)
ELEVENLABS_PHONE_NUMBER_ID = env.str("ELEVENLABS_PHONE_NUMBER_ID", default="").strip()
# Post-call audio arrives base64 in the webhook body; larger bodies are refused with 413.
ELEVENLABS_WEBHOOK_MAX_BYTES = env_int(env, "ELEVENLABS_WEBHOOK_MAX_BYTES", default=200 * 1024 * 1024, minimum=1024)
# Values in one webhook body (a count of arrays, objects and commas); more is refused before parsing.
ELEVENLABS_WEBHOOK_MAX_JSON_ITEMS = env_int(env, "ELEVENLABS_WEBHOOK_MAX_JSON_ITEMS", default=1_000_000, minimum=1000)
# Sessions stuck in connecting/active longer than this are ended with reason "timeout".
SESSION_STALE_SECONDS = env_int(env, "SESSION_STALE_SECONDS", default=900, minimum=60)
# What the record keeps of a call (sessions/redaction.py, sessions/memory.py, manage.py prune_sessions):
# mask e-mail addresses, phone, card and IBAN numbers in transcripts and summaries before they are stored;
# give each new session the customer's previous calls as dynamic variables; and the days after a session's
# end that prune_sessions keeps its transcript and analysis (RETENTION_DAYS) or its recording
# (AUDIO_RETENTION_DAYS) by default, 0 for as long as the session exists.
TRANSCRIPT_REDACTION = env_bool(env, "TRANSCRIPT_REDACTION", default=False)
CONVERSATION_MEMORY = env_bool(env, "CONVERSATION_MEMORY", default=False)
RETENTION_DAYS = env_int(env, "RETENTION_DAYS", default=0)
AUDIO_RETENTION_DAYS = env_int(env, "AUDIO_RETENTION_DAYS", default=0)
# The agent platform the sessions domain asks what it cannot know itself (sessions/platform.py): whether a
# session is simulated by default (yes without an API key), and which conversations a client may claim.
VOICE_AGENT_PLATFORM = "elevenlabs.platform.ElevenLabsPlatform"

# Who holds simulated sessions' conversations (elevenlabs.backends.backend_for); unset without the simulator.
ELEVENLABS_SIMULATOR_BACKEND = "elevenlabs.simulator.backend.SimulatedAgentBackend" if SIMULATOR_ENABLED else ""

# The simulated agent's timing, as ElevenLabs' defaults (transport_receive_timeout 60 s, max call 600 s).
SIMULATOR_PING_INTERVAL_SECONDS = env_float(env, "SIMULATOR_PING_INTERVAL_SECONDS", default=10.0, minimum=0.1)
SIMULATOR_INACTIVITY_TIMEOUT_SECONDS = env_float(env, "SIMULATOR_INACTIVITY_TIMEOUT_SECONDS", default=60.0, minimum=1)
SIMULATOR_MAX_DURATION_SECONDS = env_float(env, "SIMULATOR_MAX_DURATION_SECONDS", default=600.0, minimum=1)
SIMULATOR_END_OF_SPEECH_SILENCE_SECONDS = env_float(
    env, "SIMULATOR_END_OF_SPEECH_SILENCE_SECONDS", default=0.8, minimum=0.1
)
SIMULATOR_SPEECH_RMS_THRESHOLD = env_float(env, "SIMULATOR_SPEECH_RMS_THRESHOLD", default=500.0, minimum=0)

# --- Logging --------------------------------------------------------------------------------
LOG_DIR = Path(env.str("LOG_DIR", default=str(BASE_DIR / "logs")))
LOG_LEVEL = env_choice(
    env, "LOG_LEVEL", default="info", choices={"debug", "info", "warning", "error", "critical"}
).upper()
LOG_MAX_BYTES = env_int(env, "LOG_MAX_BYTES", default=10 * 1024 * 1024, minimum=1024)
LOG_BACKUP_COUNT = env_int(env, "LOG_BACKUP_COUNT", default=5, minimum=1)
# text: one readable line per event; json: one JSON object per line (time, level, logger, session_id,
# message, extra fields) for log shippers. Both go to the file and stderr, redacted alike.
LOG_FORMAT = env_choice(env, "LOG_FORMAT", default="text", choices={"text", "json"})
LOG_FILE = LOG_DIR / "elevenlabs.log"
CLIENT_LOG_MAX_BYTES = env_int(env, "CLIENT_LOG_MAX_BYTES", default=8 * 1024, minimum=256)

# --- Prometheus metrics ------------------------------------------------------------------
# GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; with no token the route answers 404
# as if it did not exist. Several workers share their counts through PROMETHEUS_MULTIPROC_DIR (read by
# prometheus_client itself from the environment; scripts/serve.sh empties it before granian starts).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="").strip()
METRICS_TOKEN_MIN_LENGTH = 16
if METRICS_TOKEN and len(METRICS_TOKEN) < METRICS_TOKEN_MIN_LENGTH:
    raise ConfigurationError(
        f"METRICS_TOKEN is shorter than {METRICS_TOKEN_MIN_LENGTH} characters; use a long random value "
        "(python -c 'import secrets; print(secrets.token_urlsafe(32))')."
    )
_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _multiproc_dir and not Path(_multiproc_dir).is_dir():
    # Every counter would fail to open its file in the middle of a request.
    raise ConfigurationError(
        f"PROMETHEUS_MULTIPROC_DIR={_multiproc_dir!r} is not a folder; "
        "make it (empty) with `python -m voiceagent.metrics prepare` before the workers start."
    )

# --- Request bodies -------------------------------------------------------------------------
# Caps enforced while a body streams in, before Django spools it (voiceagent/bodylimit.py): past
# the cap the answer is 413 at once. The API's largest legitimate body (a session with 50 dynamic
# variables of 1000 characters, escaped as \uXXXX) is about 600 KB; every path not listed below
# (the JSON API, the admin's forms) has this cap. A path ending in "/" caps every path under it.
API_MAX_BODY_BYTES = env_int(env, "API_MAX_BODY_BYTES", default=1024 * 1024, minimum=1024)
REQUEST_BODY_LIMITS = {
    "/healthz": 0,
    "/api/healthz": 0,
    "/metrics": 0,
    "/api/logs": CLIENT_LOG_MAX_BYTES,
    "/elevenlabs/webhook": ELEVENLABS_WEBHOOK_MAX_BYTES,
    "/elevenlabs/conversation-init": ELEVENLABS_TOOLS_MAX_BYTES,
    "/elevenlabs/tools/": ELEVENLABS_TOOLS_MAX_BYTES,
}

# voiceagent.logging.configure makes LOG_DIR as logging is set up (not while these settings are read).
LOGGING_CONFIG = "voiceagent.logging.configure"
_LOG_FORMATTER = "json" if LOG_FORMAT == "json" else "line"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "voiceagent.logging.RedactSecretsFilter"},
        "session": {"()": "voiceagent.logging.SessionContextFilter"},
    },
    "formatters": {
        "line": {
            "()": "voiceagent.logging.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s session=%(session_id)s %(message)s",
        },
        "json": {"()": "voiceagent.logging.JsonLineFormatter"},
    },
    "handlers": {
        "file": {
            "class": "concurrent_log_handler.ConcurrentRotatingFileHandler",
            "filename": str(LOG_FILE),
            "maxBytes": LOG_MAX_BYTES,
            "backupCount": LOG_BACKUP_COUNT,
            "encoding": "utf-8",
            "filters": ["session", "redact"],
            "formatter": _LOG_FORMATTER,
        },
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["session", "redact"],
            "formatter": _LOG_FORMATTER,
        },
    },
    "root": {"handlers": ["file", "console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # granian (scripts/serve.sh) sets up its own handlers before Django loads; take them over so
        # that its access log (ACCESS_LOG=true; it carries the simulator's signed URLs) and its own
        # lines pass the redaction filter too.
        "granian.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "_granian": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
