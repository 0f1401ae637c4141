"""Settings for the test suite: the project's settings, never a developer's .env."""

import os
import tempfile

os.environ["VOICEAGENT_READ_DOTENV"] = "0"
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-for-the-suite-only-0123456789abcdefghij")
os.environ.setdefault("LOG_DIR", tempfile.mkdtemp(prefix="voiceagent-test-logs-"))
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# Django's test client asks for http://testserver; a server process a test starts gets its own (tests/server.py).
os.environ.setdefault("PUBLIC_BASE_URL", "http://testserver")
# Real-mode defaults; tests that need simulation override settings per test.
os.environ.setdefault("ELEVENLABS_API_KEY", "xi-test-key-0000000000000000")
os.environ.setdefault("ELEVENLABS_SUPPORT_AGENT_ID", "agent_support_test")
os.environ.setdefault("ELEVENLABS_SALES_AGENT_ID", "agent_sales_test")
os.environ.setdefault("ELEVENLABS_WEBHOOK_SECRET", "wsec_test_secret_0000000000")

from voiceagent.settings import *  # noqa: E402,F403
from voiceagent.settings import DATABASES  # noqa: E402

# Collected manifests are for production; live_server serves from the finders.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = tempfile.mkdtemp(prefix="voiceagent-test-static-")
# Exported so that a server process started by a test (tests/server.py) stores files where the test reads them.
MEDIA_ROOT = os.environ.get("VOICEAGENT_TEST_MEDIA_ROOT") or tempfile.mkdtemp(prefix="voiceagent-test-media-")
os.environ["VOICEAGENT_TEST_MEDIA_ROOT"] = MEDIA_ROOT
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so that a server process started by a test sees the same data.
    _test_db = os.path.join(tempfile.gettempdir(), f"voiceagent-test-{os.getpid()}.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": _test_db}
