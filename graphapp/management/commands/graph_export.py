"""Write the whole graph to a CodeDreamer JSON file."""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from graphapp.interchange import export_graph


class Command(BaseCommand):
    help = "Export every node and edge to a CodeDreamer JSON file ('-' for standard output)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="the JSON file to write, or - for standard output")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        document = export_graph()
        text = json.dumps(document, ensure_ascii=False)
        if file == "-":
            self.stdout.write(text)
            return
        try:
            with open(file, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            raise CommandError(f"Cannot write {file}: {exc.strerror or exc}") from exc
        counts = f"{len(document['nodes'])} nodes and {len(document['edges'])} edges"
        self.stdout.write(self.style.SUCCESS(f"Exported {counts} to {file}."))
