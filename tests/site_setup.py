"""Prepare a fresh database for a test server: migrate and create the test users.

Run as ``python -m tests.site_setup`` with the server's environment.
"""

import django
from django.core.management import call_command

PASSWORD = "correct-horse-battery-staple"


def main() -> None:
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.contrib.auth.models import Permission, User

    User.objects.create_superuser("admin", "", PASSWORD)
    viewer = User.objects.create_user("viewer", "", PASSWORD)
    viewer.user_permissions.add(Permission.objects.get(codename="view_node"))
    editor = User.objects.create_user("editor", "", PASSWORD)
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_node", "add_node"]))
    User.objects.create_user("nobody", "", PASSWORD)


if __name__ == "__main__":
    main()
