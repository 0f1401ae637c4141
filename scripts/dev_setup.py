"""Development set-up steps that need Python, called by scripts/bootstrap.sh dev.

write-env     .env from .env.example with DEBUG=true and a fresh SECRET_KEY, unless .env exists
ensure-admin  an `admin` superuser with a generated password when there is no superuser yet
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = REPO_ROOT / ".env"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
# Git-ignored; holds the generated admin password and API token for this checkout only.
CREDENTIALS_FILE = REPO_ROOT / ".dev-credentials"
ADMIN_USERNAME = "admin"


def write_private(path: Path, text: str) -> None:
    # Created 0600 from the start: the file holds secrets.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_env() -> None:
    if ENV_FILE.exists():
        return
    lines = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("DEBUG="):
            line = "DEBUG=true"
        elif line.startswith("SECRET_KEY="):
            line = f"SECRET_KEY={secrets.token_urlsafe(50)}"
        lines.append(line)
    write_private(ENV_FILE, "\n".join(lines) + "\n")
    print("==> wrote .env (DEBUG=true, a fresh SECRET_KEY); edit it to add ElevenLabs keys")


def ensure_admin() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    port = os.environ.get("PORT", "8000")
    admin_url = f"http://localhost:{port}/admin/"
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        where = f"password in {CREDENTIALS_FILE.name}" if CREDENTIALS_FILE.exists() else "your superuser account"
        print(f"==> admin: {admin_url} ({where})")
        return

    password = secrets.token_urlsafe(12)
    user, _ = user_model.objects.get_or_create(username=ADMIN_USERNAME, defaults={"email": "admin@localhost"})
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    token, _ = Token.objects.get_or_create(user=user)
    write_private(
        CREDENTIALS_FILE,
        "# Development admin made by `make run`. Delete the user in the admin to have a new one made.\n"
        f"ADMIN_USERNAME={ADMIN_USERNAME}\nADMIN_PASSWORD={password}\nADMIN_API_TOKEN={token.key}\n",
    )
    print(
        f"==> created superuser '{ADMIN_USERNAME}' with password {password}\n"
        f"    log in at {admin_url}; password and API token saved in {CREDENTIALS_FILE.name}"
    )


def main(argv: list[str]) -> int:
    steps = {"write-env": write_env, "ensure-admin": ensure_admin}
    if len(argv) != 2 or argv[1] not in steps:
        print(f"usage: {argv[0]} {{{','.join(steps)}}}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO_ROOT))
    from voiceagent.config import ConfigurationError

    try:
        steps[argv[1]]()
    except ConfigurationError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
