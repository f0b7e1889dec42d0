"""Delete every node whose momentum is below a threshold, with its edges."""

from argparse import ArgumentParser
from typing import Any

from graphapp import operations
from graphapp.management.arguments import Number
from graphapp.management.base import GraphCommand
from graphapp.management.commands._publishing import wait_for_publication

BELOW = Number(0, 1, above=True)


class Command(GraphCommand):
    help = "Delete the nodes whose momentum is below --below, and their edges (one publish)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--below", type=BELOW, required=True, help=f"momentum threshold ({BELOW})"
        )

    def handle(self, *args: Any, below: float, **options: Any) -> None:
        count = operations.prune_below(below)
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Pruned {count} nodes below {below}."))
