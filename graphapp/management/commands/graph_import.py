"""Add a CodeDreamer JSON graph file to the graph, all or nothing, publishing once."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from graphapp.conf import get_config
from graphapp.interchange import ImportFileError, import_graph, read_graph
from graphapp.management.arguments import Whole
from graphapp.management.base import GraphCommand
from graphapp.management.commands._publishing import wait_for_publication
from graphapp.management.files import FileRefused, TooLarge, read_limited

MAX_BYTES = Whole(1, 1 << 40)


class Command(GraphCommand):
    help = (
        "Import nodes and edges from a CodeDreamer JSON file (new ids; nothing on error). "
        "Only a regular file, or - for standard input, of at most --max-bytes."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="the JSON file (a regular file), or - for standard input")
        parser.add_argument(
            "--max-bytes",
            type=MAX_BYTES,
            default=None,
            help=f"refuse a larger file ({MAX_BYTES}); default: GRAPHAPP['MAX_IMPORT_BYTES']",
        )

    def handle(self, *args: Any, file: str, max_bytes: int | None, **options: Any) -> None:
        limit = max_bytes or get_config()["MAX_IMPORT_BYTES"]
        name = "standard input" if file == "-" else file
        try:
            data = read_limited(file, limit)
        except TooLarge as exc:
            raise CommandError(
                f"Cannot read {name}: {exc} (--max-bytes, GRAPHAPP['MAX_IMPORT_BYTES']); "
                "nothing was imported."
            ) from exc
        except FileRefused as exc:
            raise CommandError(f"Cannot read {name}: {exc}; nothing was imported.") from exc
        except OSError as exc:
            reason = exc.strerror or exc
            raise CommandError(f"Cannot read {name}: {reason}; nothing was imported.") from exc
        try:
            nodes, edges = import_graph(read_graph(data))
        except ImportFileError as exc:
            raise CommandError(f"{name}: {exc}; nothing was imported.") from exc
        except MemoryError as exc:  # parsed, a file takes up to about 30 times its size
            raise CommandError(
                f"{name}: not enough memory for its {len(data):,} bytes; nothing was imported."
            ) from exc
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Imported {nodes} nodes and {edges} edges."))
