"""Apply momentum decay to every node (one UPDATE, one publish)."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from graphapp import operations
from graphapp.management.commands._publishing import wait_for_publication
from graphapp.models import MAX_DECAY_HOURS


class Command(BaseCommand):
    help = (
        "Decay every node's momentum by 0.05 per hour (floor 0.01). Without --hours, by "
        "the time since each node's last decay; with it, by exactly that many hours."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--hours",
            type=float,
            default=None,
            help=f"hours of decay to apply (0 to {MAX_DECAY_HOURS}); default: the time elapsed",
        )

    def handle(self, *args: Any, hours: float | None, **options: Any) -> None:
        if hours is not None and not 0 <= hours <= MAX_DECAY_HOURS:  # NaN fails both
            raise CommandError(
                f"--hours must be a finite number from 0 to {MAX_DECAY_HOURS}, not {hours}."
            )
        count = operations.decay(hours=hours)
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Decayed {count} nodes."))
