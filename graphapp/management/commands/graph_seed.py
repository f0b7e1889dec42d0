"""Fill the graph with random demo nodes and edges, in bulk."""

import random
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from graphapp.management.commands._publishing import wait_for_publication
from graphapp.models import Edge, Node, NodeType
from graphapp.signals import publish_on_commit

BATCH = 5000
RELATIONS = (
    "relates_to",
    "same_file",
    "same_cycle",
    "semantic",
    "implements",
    "improves",
    "depends_on",
)
WORDS = (
    "cache",
    "parser",
    "graph",
    "token",
    "momentum",
    "decay",
    "edge",
    "index",
    "query",
    "stream",
    "module",
    "dream",
    "entity",
    "concept",
    "fact",
    "refactor",
    "schema",
)


class Command(BaseCommand):
    help = "Create N random nodes and M random edges between them (bulk inserts, one publish)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--nodes", type=int, default=100, help="nodes to create (default 100)")
        parser.add_argument(
            "--edges",
            type=int,
            default=None,
            help="edges to create among the new nodes (default 2 per node, as many as fit)",
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="random seed, for repeatable data"
        )

    def handle(
        self, *args: Any, nodes: int, edges: int | None, seed: int | None, **options: Any
    ) -> None:
        if edges is None:
            edges = min(2 * nodes, nodes * max(nodes - 1, 0))
        if nodes < 0 or edges < 0:
            raise CommandError("--nodes and --edges must be >= 0.")
        if edges > nodes * (nodes - 1):
            raise CommandError(
                f"{nodes} nodes allow at most {nodes * max(nodes - 1, 0)} edges "
                "(one per ordered pair, no loops)."
            )
        rng = random.Random(seed)
        now = timezone.now()
        with transaction.atomic():
            created = Node.objects.bulk_create(
                (self._node(rng, now) for _ in range(nodes)), batch_size=BATCH
            )
            ids = [node.pk for node in created]
            Edge.objects.bulk_create(
                (
                    Edge(
                        source_id=s,
                        target_id=t,
                        relation=rng.choice(RELATIONS),
                        weight=round(rng.random(), 3),
                        created_at=now,
                    )
                    for s, t in self._pairs(rng, ids, edges)
                ),
                batch_size=BATCH,
            )
            publish_on_commit(created=len(created))  # bulk_create sends no post_save
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Created {nodes} nodes and {edges} edges."))

    @staticmethod
    def _node(rng: random.Random, now: Any) -> Node:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        return Node(
            content=words.capitalize() + ".",
            node_type=rng.choice(NodeType.values),
            momentum=round(rng.random(), 3),
            created_at=now,
            last_accessed=now,
            decayed_at=now,
            metadata={"seeded": True},
        )

    @staticmethod
    def _pairs(rng: random.Random, ids: list[int], count: int) -> list[tuple[int, int]]:
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < count:
            source, target = rng.choice(ids), rng.choice(ids)
            if source != target:
                pairs.add((source, target))
        return list(pairs)
