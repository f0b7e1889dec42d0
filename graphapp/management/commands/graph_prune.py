"""Delete every node whose momentum is below a threshold, with its edges."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from graphapp import operations
from graphapp.management.commands._publishing import wait_for_publication


class Command(BaseCommand):
    help = "Delete the nodes whose momentum is below --below, and their edges (one publish)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--below", type=float, required=True, help="momentum threshold in (0, 1]"
        )

    def handle(self, *args: Any, below: float, **options: Any) -> None:
        if not 0 < below <= 1:
            raise CommandError(f"--below must be in (0, 1], not {below}.")
        count = operations.prune_below(below)
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Pruned {count} nodes below {below}."))
