from django.urls import path, re_path
from django.views.i18n import JavaScriptCatalog

from graphapp import jsonapi, views

app_name = "graphapp"

urlpatterns = [
    path("events/", views.events, name="events"),
    path("live/", views.live, name="live"),
    path("api/stats/", jsonapi.stats, name="api-stats"),
    path("api/nodes/", jsonapi.nodes, name="api-nodes"),
    path("api/history/", jsonapi.history_points, name="api-history"),
    path("api/health/", views.health, name="api-health"),
    path("api/token/", jsonapi.stream_token, name="api-token"),
    # Every other path under api/ answers 404 in JSON.
    re_path(r"^api/(?P<rest>.*)$", jsonapi.not_found, name="api-not-found"),
    path("metrics/", views.metrics, name="metrics"),
    # The panel's strings in the request's language, for panel.js's gettext().
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["graphapp"]), name="jsi18n"),
]
