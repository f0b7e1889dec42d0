"""Print the graph's statistics snapshot as JSON; ``--rebuild`` the degree ledger first."""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from graphapp import ledger, snapshots
from graphapp.management.arguments import Whole
from graphapp.management.base import GraphCommand

INDENT = Whole(0, 8)


class Command(GraphCommand):
    help = "Print the current statistics snapshot as JSON (publishes nothing)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--indent", type=INDENT, default=2, help=f"JSON indent ({INDENT}, default 2)"
        )
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="recompute the per-node degree ledger (PostgreSQL, SQLite) from the edges "
            "first (after writes that skipped triggers, such as pg_restore --disable-triggers)",
        )

    def handle(self, *args: Any, indent: int, rebuild: bool, **options: Any) -> None:
        if rebuild:
            if not ledger.in_use(DEFAULT_DB_ALIAS):
                raise CommandError(
                    "--rebuild: this database keeps no degree ledger (PostgreSQL and "
                    "SQLite keep one once graphapp's migration 0004 has run)"
                )
            try:
                ledger.rebuild(DEFAULT_DB_ALIAS)
            except DatabaseError as exc:
                raise CommandError(f"--rebuild failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(json.dumps(snapshots.take(), indent=indent or None))
