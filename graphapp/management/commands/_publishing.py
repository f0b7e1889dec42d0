"""What the graph commands share: publish once when the bulk work is done."""

from django.core.management.base import BaseCommand, OutputWrapper

from graphapp.publish import publish_now


def publish_once(stdout: OutputWrapper, command: BaseCommand) -> None:
    """Publish the final state once; say so when it could not be done in time."""
    if not publish_now():
        stdout.write(command.style.WARNING("The statistics could not be published in time."))
