"""Print the graph's statistics snapshot as JSON."""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from graphapp.publish import publisher


class Command(BaseCommand):
    help = "Print the current statistics snapshot as JSON (publishes nothing)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--indent", type=int, default=2, help="JSON indent (default 2)")

    def handle(self, *args: Any, indent: int, **options: Any) -> None:
        self.stdout.write(json.dumps(publisher.snapshot(), indent=indent or None))
