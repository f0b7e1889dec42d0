"""Apply momentum decay to every node (one UPDATE, one publish)."""

from argparse import ArgumentParser
from typing import Any

from graphapp import operations
from graphapp.management.arguments import Number
from graphapp.management.base import GraphCommand
from graphapp.management.commands._publishing import wait_for_publication
from graphapp.models import MAX_DECAY_HOURS

HOURS = Number(0, MAX_DECAY_HOURS)


class Command(GraphCommand):
    help = (
        "Decay every node's momentum by 0.05 per hour (floor 0.01). Without --hours, by "
        "the time since each node's last decay; with it, by exactly that many hours."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--hours",
            type=HOURS,
            default=None,
            help=f"hours of decay to apply ({HOURS}); default: the time elapsed",
        )

    def handle(self, *args: Any, hours: float | None, **options: Any) -> None:
        count = operations.decay(hours=hours)  # checks hours given from code
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Decayed {count} nodes."))
