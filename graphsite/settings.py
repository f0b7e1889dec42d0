"""Settings for graphsite, the project that hosts graphapp.

The embedded default needs nothing: SQLite next to this file and Channels'
in-memory layer, one process. Environment variables override it:
``DATABASE_URL`` (any URL dj-database-url reads), ``REDIS_URL`` (channels-redis),
``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG``, ``DJANGO_ALLOWED_HOSTS`` (comma-separated),
``DJANGO_STATIC_ROOT`` and, behind a TLS proxy, ``DJANGO_SECURE_PROXY_SSL_HEADER``.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: str = "") -> bool:
    """Whether the environment variable ``name`` says yes."""
    return os.environ.get(name, default).lower() in {"1", "true", "yes", "on"}


DEVELOPMENT_SECRET_KEY = "graphsite-development-only-not-for-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_flag("DJANGO_DEBUG", "1")
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off: the development secret is public."
    )
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "graphapp",
    "graphsite",  # its bootstrap_admin command
]

# No GZipMiddleware: it would compress the event stream chunk by chunk.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the browser's language (LANGUAGES)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "graphsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "graphsite.asgi.application"
WSGI_APPLICATION = None

DATABASES: dict[str, Any] = {
    "default": dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A transaction takes the write lock when it begins: one that read first
    # would fail at once, not wait, when graphapp's worker writes meanwhile (W006).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("transaction_mode", "IMMEDIATE")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process: a reconnect storm of browsers (each request checks its
    # session and permissions) waits for a connection instead of exceeding the
    # server's max_connections. Streams give theirs back before streaming.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_SIZE", "20")),
        "timeout": 30,
    }

# Channels' in-memory layer serves one process; with REDIS_URL every process
# (servers, the shell, management commands) shares one layer through Redis.
REDIS_URL = os.environ.get("REDIS_URL", "")
CHANNEL_LAYERS: dict[str, Any] = (
    {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": os.environ.get("REDIS_PREFIX", "graphsite"),
                "group_expiry": int(os.environ.get("REDIS_GROUP_EXPIRY", "120")),
            },
        }
    }
    if REDIS_URL
    else {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The languages graphapp ships (graphapp/locale); a browser asking for another gets English.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))

# Behind a proxy (deploy/nginx/graphapp.conf), which passes on the browser's Host
# and sets X-Forwarded-Proto. Where it ends TLS, DJANGO_SECURE_PROXY_SSL_HEADER=1
# trusts that header (only behind such a proxy: clients could send it themselves);
# without it Django sees plain HTTP and its CSRF check refuses the https Origin.
if env_flag("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "graphapp:live"

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "graphapp": {
            "handlers": ["console"],
            "level": os.environ.get("GRAPHAPP_LOG_LEVEL", "INFO"),
            "propagate": False,  # daphne logs to the root logger too: once is enough
        }
    },
}

GRAPHAPP: dict[str, Any] = {}
