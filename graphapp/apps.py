from django.apps import AppConfig


class GraphappConfig(AppConfig):
    name = "graphapp"
    verbose_name = "Knowledge graph"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connect the receivers that publish after every committed change.
        from django.core import checks
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from graphapp import revoke, schema, signals
        from graphapp.checks import check_cross_process_updates, check_deployment
        from graphapp.conf import get_config

        # Validated at start-up: a wrong setting stops the process here with
        # ImproperlyConfigured naming the key, not at the first stream.
        get_config()
        signals.connect()
        revoke.connect()
        connection_created.connect(schema.forget, dispatch_uid="graphapp.schema.forget")
        post_migrate.connect(schema.forget, dispatch_uid="graphapp.schema.forget")
        # The live panel on the admin's index, unless the project has its own index.
        from django.contrib import admin

        if admin.site.index_template is None:
            admin.site.index_template = "graphapp/admin/index.html"
        checks.register(check_deployment)
        checks.register(check_cross_process_updates)
