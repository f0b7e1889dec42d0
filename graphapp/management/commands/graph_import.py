"""Add a CodeDreamer JSON graph file to the graph, all or nothing, publishing once."""

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from graphapp.interchange import ImportFileError, import_graph, read_graph
from graphapp.management.commands._publishing import wait_for_publication


class Command(BaseCommand):
    help = "Import nodes and edges from a CodeDreamer JSON file (new ids; nothing on error)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path, help="the JSON file")

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}") from exc
        try:
            nodes, edges = import_graph(read_graph(data))
        except ImportFileError as exc:
            raise CommandError(f"{file}: {exc}; nothing was imported.") from exc
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Imported {nodes} nodes and {edges} edges."))
