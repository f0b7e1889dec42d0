from typing import Any

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    label = "bench"
    verbose_name = "graphapp benchmarks"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from bench.baselines import note_commit
        from graphapp.models import Node

        def noted(sender: type[Node], instance: Node, **kwargs: Any) -> None:
            note_commit(instance.content, kwargs.get("using"))

        post_save.connect(noted, sender=Node, weak=False, dispatch_uid="bench.commit")
