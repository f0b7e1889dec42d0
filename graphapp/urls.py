from django.urls import path

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
]
