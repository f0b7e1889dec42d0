"""Prepare a benchmark database: migrate, create the users, seed a small graph.

Run as ``python -m bench.site [NODES]`` with the server's environment.
"""

import sys

import django
from django.core.management import call_command

PASSWORD = "bench-password-not-secret"
VIEWERS = 8


def main() -> None:
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.contrib.auth.models import Permission, User

    view = Permission.objects.get(codename="view_node")
    add = Permission.objects.get(codename="add_node")
    if not User.objects.filter(username="editor").exists():
        editor = User.objects.create_user("editor", "", PASSWORD)
        editor.user_permissions.add(view, add)
        for index in range(VIEWERS):
            viewer = User.objects.create_user(f"viewer{index}", "", PASSWORD)
            viewer.user_permissions.add(view)
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    if nodes:
        call_command("graph_seed", nodes=nodes, edges=nodes * 3, seed=1, verbosity=0)


if __name__ == "__main__":
    main()
