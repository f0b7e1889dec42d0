"""Sphinx configuration of graphapp's documentation (``make docs``).

The pages are Markdown (MyST), so docs/benchmarks.md, which ``make bench``
writes, is a page as it is. The Python API comes from graphapp's docstrings.
"""

import sys
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports graphapp.api, which imports the models: Django is set up on
# settings of the docs' own, so neither graphsite's environment (DATABASE_URL,
# DJANGO_DEBUG...) nor a test's DJANGO_SETTINGS_MODULE changes the build.
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "graphapp",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    ASGI_APPLICATION="graphsite.asgi.application",
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()

from graphapp import __version__  # noqa: E402  (after django.setup(): the app is loaded)

project = "graphapp"
author = "graphapp contributors"
copyright = "graphapp contributors"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["deflist"]
# Headings get anchors, so pages link to a setting or a check: settings.md#verify_interval.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "furo"
html_title = f"graphapp {release}"
