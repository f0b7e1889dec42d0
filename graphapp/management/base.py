"""What every graphapp command shares: its errors are one line, never a traceback."""

from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError


class OneLineParser(CommandParser):
    """Django's parser, whose errors on the command line are one line (no usage)."""

    def error(self, message: str) -> NoReturn:
        if not self.called_from_command_line:  # call_command(): as Django's parser does
            raise CommandError(f"Error: {message}")
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class GraphCommand(BaseCommand):
    """A command whose bad arguments and database failures end in a one-line error."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds the parser itself; this keeps every argument it added and
        # changes only how an error is printed.
        parser.__class__ = OneLineParser
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except DatabaseError as exc:  # unmigrated, locked, read-only, full, unreachable
            detail = " ".join(str(exc).split())  # PostgreSQL's messages span lines
            raise CommandError(f"the database failed: {type(exc).__name__}: {detail}") from exc
