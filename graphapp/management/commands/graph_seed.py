"""Fill the graph with random demo nodes and edges, in bulk.

Rows are made and inserted a batch at a time; what the process keeps beyond a
batch is two numbers per node (its id and its out-degree), so the counts'
bounds bound its memory.
"""

import datetime
import itertools
import random
from argparse import ArgumentParser
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from graphapp.management.arguments import Whole
from graphapp.management.base import GraphCommand
from graphapp.management.commands._publishing import wait_for_publication
from graphapp.models import Edge, Node, NodeType
from graphapp.signals import publish_on_commit

BATCH = 5000
NODES = Whole(0, 1_000_000)
EDGES = Whole(0, 10_000_000)
SEED = Whole(0, 2**32 - 1)
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


Row = TypeVar("Row")


def batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """``rows`` in lists of ``size`` (the last one shorter)."""
    rows = iter(rows)
    while batch := list(itertools.islice(rows, size)):
        yield batch


class Command(GraphCommand):
    help = "Create N random nodes and M random edges between them (bulk inserts, one publish)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--nodes", type=NODES, default=100, help=f"nodes to create ({NODES}, default 100)"
        )
        parser.add_argument(
            "--edges",
            type=EDGES,
            default=None,
            help=f"edges to create among the new nodes ({EDGES}; default 2 per node, "
            "as many as fit)",
        )
        parser.add_argument(
            "--seed", type=SEED, default=None, help=f"random seed, for repeatable data ({SEED})"
        )

    def handle(
        self, *args: Any, nodes: int, edges: int | None, seed: int | None, **options: Any
    ) -> None:
        room = nodes * max(nodes - 1, 0)
        if edges is None:
            edges = min(2 * nodes, room)
        if edges > room:
            raise CommandError(
                f"{nodes} nodes allow at most {room} edges (one per ordered pair, no loops)."
            )
        rng = random.Random(seed)
        now = timezone.now()
        with transaction.atomic():
            ids: list[int] = []
            for batch in batches((self._node(rng, now) for _ in range(nodes)), BATCH):
                ids.extend(node.pk for node in Node.objects.bulk_create(batch))
            for links in batches(self._edges(rng, ids, edges, now), BATCH):
                Edge.objects.bulk_create(links)
            publish_on_commit(created=len(ids))  # bulk_create sends no post_save
        wait_for_publication(self)
        self.stdout.write(self.style.SUCCESS(f"Created {nodes} nodes and {edges} edges."))

    @staticmethod
    def _node(rng: random.Random, now: datetime.datetime) -> Node:
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
    def _out_degrees(rng: random.Random, nodes: int, count: int) -> list[int]:
        """How many of ``count`` edges leave each node: at random, at most nodes - 1 each."""
        degrees = [0] * nodes
        for _ in range(count):
            source = rng.randrange(nodes)
            while degrees[source] == nodes - 1:
                source = rng.randrange(nodes)
            degrees[source] += 1
        return degrees

    @classmethod
    def _edges(
        cls, rng: random.Random, ids: list[int], count: int, now: datetime.datetime
    ) -> Iterator[Edge]:
        """``count`` edges between distinct ordered pairs of ``ids``, no loops."""
        for index, degree in enumerate(cls._out_degrees(rng, len(ids), count)):
            # Distinct targets among the other nodes: positions past the source shift by one.
            for other in rng.sample(range(len(ids) - 1), degree):
                yield Edge(
                    source_id=ids[index],
                    target_id=ids[other + (other >= index)],
                    relation=rng.choice(RELATIONS),
                    weight=round(rng.random(), 3),
                    created_at=now,
                )
