from django.apps import AppConfig


class GraphappConfig(AppConfig):
    name = "graphapp"
    verbose_name = "Knowledge graph"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connect the receivers that publish after every committed change.
        from graphapp import signals

        signals.connect()
