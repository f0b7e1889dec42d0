"""Settings for graphsite, the project that hosts graphapp.

The embedded default needs nothing: SQLite next to this file and Channels'
in-memory layer, one process, DEBUG on for development. Environment variables
override it: ``DATABASE_URL`` (any URL dj-database-url reads), ``REDIS_URL``
(channels-redis), ``DJANGO_SECRET_KEY`` (once set, DEBUG is off unless
``DJANGO_DEBUG=1``), ``DJANGO_ALLOWED_HOSTS`` (comma-separated),
``DJANGO_STATIC_ROOT``, behind a TLS proxy ``DJANGO_SECURE_PROXY_SSL_HEADER``,
HTTPS with ``DJANGO_HTTPS`` and the login throttle's ``DJANGO_LOGIN_*``
(docs/settings.md lists them all).
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url

from graphsite.environment import (
    env_flag,
    env_seconds,
    env_whole_number,
    refuse_public_development_key,
    require_strong_secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent


# --- Secret key, DEBUG and hosts ---
# Development is what runs with nothing configured: the public development key,
# DEBUG on, this machine's names only. A DJANGO_SECRET_KEY of one's own means a
# deployment: DEBUG is then off unless DJANGO_DEBUG=1 says otherwise, and with
# DEBUG off the key must pass Django's own strength check (security.W009).
DEVELOPMENT_SECRET_KEY = "graphsite-development-only-not-for-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or DEVELOPMENT_SECRET_KEY
DEBUG = env_flag("DJANGO_DEBUG", "1" if SECRET_KEY == DEVELOPMENT_SECRET_KEY else "0")
if not DEBUG:
    require_strong_secret_key(SECRET_KEY, DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if host.strip()
]
if SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    refuse_public_development_key(ALLOWED_HOSTS)

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
    "axes",  # login throttling, see below
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
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it turns a lockout into 429
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

# CONN_HEALTH_CHECKS: a connection is checked before it is used again (with the
# pool below, psycopg_pool checks each one it lends), so that the first requests
# after a database restart get new connections instead of dead ones and a 500.
DATABASES: dict[str, Any] = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A transaction takes the write lock when it begins: one that read first
    # would fail at once, not wait, when graphapp's worker writes meanwhile (W006).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("transaction_mode", "IMMEDIATE")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process: a reconnect storm of browsers (each request checks its
    # session and permissions) waits for a connection instead of exceeding the
    # server's max_connections. Streams give theirs back before streaming.
    # Every wait is short (docs/deployment.md, "When the database fails"): a
    # request that has no connection within DATABASE_POOL_TIMEOUT is answered
    # 503 rather than held, and a connect that gets no answer gives up after
    # DATABASE_CONNECT_TIMEOUT (libpq's minimum is 2). The pool retries a failed
    # connect with a back-off that doubles from 1 s; reconnect_timeout ends the
    # retries before a wait between them grows past a second, and the next
    # request that needs a connection starts a new attempt at once: so the
    # first request after an outage connects within about a second.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", env_whole_number("DATABASE_CONNECT_TIMEOUT", 2, 2))
    options["pool"] = {
        "min_size": 1,
        "max_size": env_whole_number("DATABASE_POOL_SIZE", 20, 1),
        "timeout": env_seconds("DATABASE_POOL_TIMEOUT", 3.0),
        "reconnect_timeout": 2.0,
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

# --- HTTPS ---
# DJANGO_HTTPS=1 says the site is served over HTTPS only: redirect plain HTTP,
# HSTS for a year, cookies only over HTTPS. Each variable below also stands on
# its own, and overrides DJANGO_HTTPS. HSTS for subdomains and the browsers'
# preload list bind every subdomain for a long time: only when asked.
https_only = env_flag("DJANGO_HTTPS")
if_https = "1" if https_only else "0"
SECURE_SSL_REDIRECT = env_flag("DJANGO_SECURE_SSL_REDIRECT", if_https)
SECURE_HSTS_SECONDS = env_whole_number("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 * https_only)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_flag("DJANGO_SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = env_flag("DJANGO_SESSION_COOKIE_SECURE", if_https)
CSRF_COOKIE_SECURE = env_flag("DJANGO_CSRF_COOKIE_SECURE", if_https)

# --- Login throttling (django-axes) ---
# On graphsite's login form and the admin's: after DJANGO_LOGIN_FAILURE_LIMIT
# wrong passwords for one username from one address, that pair is refused (429,
# graphsite/throttle.py), the right password too, until
# DJANGO_LOGIN_COOLOFF seconds pass without another try. A good login before the
# limit starts the count again. Attempts live in the database: every process
# sees them (and `manage.py axes_reset` forgets them).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: it refuses before a password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_whole_number("DJANGO_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_whole_number("DJANGO_LOGIN_COOLOFF", 900, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Failed attempts bound themselves (each login event deletes those past their
# cool-off); a row per successful login, axes' access log, would grow without end.
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_CALLABLE = "graphsite.throttle.lockout_response"
# Behind proxies every client comes from the proxy's address: DJANGO_PROXY_COUNT
# says how many append to X-Forwarded-For (deploy/nginx/graphapp.conf: one), so
# that a lockout holds the attacker's address rather than everybody's.
GRAPHSITE_PROXY_COUNT = env_whole_number("DJANGO_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "graphsite.throttle.client_address"

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
