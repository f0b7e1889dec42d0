"""Write the whole graph to a CodeDreamer JSON file."""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from graphapp.interchange import export_graph
from graphapp.management.base import GraphCommand
from graphapp.management.files import FileRefused, write_regular


class Command(GraphCommand):
    help = (
        "Export every node and edge to a CodeDreamer JSON file: a regular file (UTF-8), "
        "or - for standard output (ASCII, other characters as \\u escapes)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="the JSON file to write, or - for standard output")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        document = export_graph()
        if file == "-":  # escaped: whatever encoding standard output has takes it
            self.stdout.write(json.dumps(document))
            return
        try:
            write_regular(file, json.dumps(document, ensure_ascii=False).encode())
        except FileRefused as exc:
            raise CommandError(f"Cannot write {file}: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"Cannot write {file}: {exc.strerror or exc}") from exc
        counts = f"{len(document['nodes'])} nodes and {len(document['edges'])} edges"
        self.stdout.write(self.style.SUCCESS(f"Exported {counts} to {file}."))
