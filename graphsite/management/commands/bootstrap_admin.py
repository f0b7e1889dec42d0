"""Create the local admin account on first run and print its random password once."""

import secrets
from typing import Any

from django.contrib.auth import get_user_model

from graphapp.management.base import GraphCommand


class Command(GraphCommand):
    help = "Create a superuser 'admin' with a random password if no superuser exists yet."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username="admin", email="", password=password)
        self.stdout.write(
            self.style.SUCCESS(
                "Created the local admin account (shown once, keep it):\n"
                f"  username: admin\n  password: {password}\n"
            )
        )
