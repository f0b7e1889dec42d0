from django.urls import path
from django.views.i18n import JavaScriptCatalog

from graphapp import views

app_name = "graphapp"

urlpatterns = [
    path("events/", views.events, name="events"),
    path("live/", views.live, name="live"),
    path("api/stats/", views.stats, name="api-stats"),
    path("api/nodes/", views.nodes, name="api-nodes"),
    path("api/history/", views.history_points, name="api-history"),
    path("api/health/", views.health, name="api-health"),
    path("metrics/", views.metrics, name="metrics"),
    # The panel's strings in the request's language, for panel.js's gettext().
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["graphapp"]), name="jsi18n"),
]
