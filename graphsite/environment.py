"""graphsite's settings read from the environment: typed values, and a clear
``ImproperlyConfigured`` naming the variable when one is wrong."""

import os

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

YES = frozenset({"1", "true", "yes", "on"})
NO = frozenset({"0", "false", "no", "off"})
# Names that reach only this machine: the one place where the public
# development secret does no harm.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def env_flag(name: str, default: str = "") -> bool:
    """Whether the environment variable ``name`` says yes (unset or empty: ``default``)."""
    raw = os.environ.get(name, "").strip() or default
    if raw.lower() in YES:
        return True
    if raw.lower() in NO or not raw:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: must be one of 1/0, true/false, yes/no, on/off")


def env_whole_number(name: str, default: int, minimum: int = 0) -> int:
    """A whole number, at least ``minimum``, from the environment variable ``name``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    problem = f"{name}={raw!r}: must be a whole number >= {minimum}"
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(problem) from None
    if value < minimum:
        raise ImproperlyConfigured(problem)
    return value


def env_seconds(name: str, default: float) -> float:
    """A number of seconds above 0 from the environment variable ``name``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:  # NaN too
        raise ImproperlyConfigured(f"{name}={raw!r}: must be a number of seconds > 0")
    return value


def weak_secret_key(key: str) -> bool:
    """What Django's security.W009 warns about (its own thresholds, not ours)."""
    return (
        len(key) < SECRET_KEY_MIN_LENGTH
        or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or key.startswith(SECRET_KEY_INSECURE_PREFIX)
    )


def require_strong_secret_key(key: str, development_key: str) -> None:
    """Refuse, with DEBUG off, a secret key that anyone could know or guess."""
    if key == development_key:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off: the development key is public."
        )
    if weak_secret_key(key):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak for DJANGO_DEBUG off: it needs at least "
            f"{SECRET_KEY_MIN_LENGTH} characters, {SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them "
            f"different, and no {SECRET_KEY_INSECURE_PREFIX!r} prefix (Django's security.W009). "
            f"Make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )


def refuse_public_development_key(hosts: list[str]) -> None:
    """The development key is public: a site that answers other names than this
    machine's would let anyone forge its sessions and signed cookies."""
    public = [host for host in hosts if host not in LOOPBACK_HOSTS]
    if public:
        raise ImproperlyConfigured(
            f"DJANGO_ALLOWED_HOSTS names {', '.join(public)} but DJANGO_SECRET_KEY is not set: "
            "the development key is public and serves this machine only. Set DJANGO_SECRET_KEY "
            "(DEBUG is then off unless DJANGO_DEBUG=1)."
        )
