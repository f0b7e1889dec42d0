"""What the graph commands share: wait for their one publication before exiting."""

from django.core.management.base import BaseCommand

from graphapp.checks import unreachable_reason
from graphapp.publish import publisher

PUBLISH_TIMEOUT = 10.0


def wait_for_publication(command: BaseCommand) -> None:
    """Wait until the publication the command's transaction asked for is done.

    The bulk operations ask for exactly one on commit; waiting here keeps the
    process alive until it has left, and says so when it could not.
    """
    reason = unreachable_reason()
    if reason:
        command.stderr.write(f"graphapp: {reason}")
    if not publisher.flush(PUBLISH_TIMEOUT):
        command.stdout.write(
            command.style.WARNING(
                "The statistics could not be published (see the log); open streams "
                "still see the change through the database within seconds."
            )
        )
