"""The bearer token of the example payments API.

The example must run offline with no setup, yet no secret may land in the repo or
the project config. The token therefore comes from the environment when the user
sets one, and is otherwise generated once and kept in the project's git-ignored
secrets file, where the rest of Headwater picks up secrets anyway.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from headwater.common.interpolation import read_env_file

TOKEN_ENV = "SHOP_API_TOKEN"


def token_source(secrets_file: Path) -> str | None:
    """Where the token currently comes from ('environment' or the file path), for status output."""
    if os.environ.get(TOKEN_ENV):
        return "environment"
    if read_env_file(secrets_file).get(TOKEN_ENV):
        return str(secrets_file)
    return None


def find_token(secrets_file: Path) -> str | None:
    """The configured token, if any: $SHOP_API_TOKEN first, then the secrets file."""
    return os.environ.get(TOKEN_ENV) or read_env_file(secrets_file).get(TOKEN_ENV) or None


def ensure_token(secrets_file: Path) -> str:
    """The configured token, generating and appending one to the secrets file if none exists."""
    token = find_token(secrets_file)
    if token:
        return token
    token = secrets.token_urlsafe(32)
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    existing = secrets_file.read_text() if secrets_file.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    # Create the file private to the user; appending keeps other secrets intact.
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(f"{separator}{TOKEN_ENV}={token}\n")
    return token
