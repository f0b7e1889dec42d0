"""graphsite's URLs plus the baselines and the harness's endpoints under ``bench/``."""

import django_eventstream.urls
from django.urls import include, path

from bench import baselines
from graphapp import views
from graphsite.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    *site_urlpatterns,
    path("bench/floor/", baselines.floor),
    # graphapp's stream through the Django view (graphsite's own is in front of Django).
    path("bench/view/", views.events),
    path("bench/old/", baselines.old_design),
    path("bench/eventstream/", include(django_eventstream.urls), {"channels": ["graph"]}),
    path("bench/publish/<str:target>/", baselines.publish),
    path("bench/burst/", baselines.burst),
    path("bench/commit/", baselines.commit_time),
    path("bench/counters/", baselines.counters),
    path("bench/trace-memory/", baselines.trace_memory),
]
