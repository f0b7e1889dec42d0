"""The knowledge graph: nodes with a type and a momentum, directed weighted edges."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Collection, Iterable
from typing import Any, ClassVar, Final

from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
)
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from graphapp.conf import get_config

HOT_THRESHOLD: Final = 0.8
WARM_THRESHOLD: Final = 0.4
MOMENTUM_FLOOR: Final = 0.01
DECAY_PER_HOUR: Final = 0.05
ACTIVATION_BOOST: Final = 0.3
# The most hours one explicit decay applies: 20 already take every momentum to
# the floor, and each node's decay clock moves forward by as many (1e12 hours
# would move it past the year 9999, where Python's datetime ends).
MAX_DECAY_HOURS: Final = 24 * 365
MAX_CONTENT_LENGTH: Final = 20_000
# An edge's weight is the strength of its connection, as CodeDreamer gives it
# (0.5 same_cycle, 0.8 same_file, a 0-1 similarity for semantic edges, 1.0 by
# default): in the entanglement's (1 + mean weight) it at most doubles a node's
# share of the degrees. Within these bounds no sum the statistics take can
# overflow (a node's outgoing weights add up to at most its outgoing edges),
# and no weight makes an entanglement negative. The edge table's CHECK
# constraint (migration 0006) and graphapp.ledger's SQL use the same bounds.
WEIGHT_MIN: Final = 0.0
WEIGHT_MAX: Final = 1.0


class NodeType(models.TextChoices):
    FACT = "FACT", _("Fact")
    CONCEPT = "CONCEPT", _("Concept")
    CODE = "CODE", _("Code")
    DREAM = "DREAM", _("Dream")
    ENTITY = "ENTITY", _("Entity")


class Tier(models.TextChoices):
    HOT = "HOT", _("Hot")
    WARM = "WARM", _("Warm")
    COLD = "COLD", _("Cold")


def tier_of(momentum: float) -> Tier:
    """The tier a momentum puts a node in."""
    if momentum >= HOT_THRESHOLD:
        return Tier.HOT
    if momentum >= WARM_THRESHOLD:
        return Tier.WARM
    return Tier.COLD


def tier_q(tier: str) -> Q:
    """A filter on Node that selects the nodes of one tier."""
    if tier == Tier.HOT:
        return Q(momentum__gte=HOT_THRESHOLD)
    if tier == Tier.WARM:
        return Q(momentum__gte=WARM_THRESHOLD, momentum__lt=HOT_THRESHOLD)
    if tier == Tier.COLD:
        return Q(momentum__lt=WARM_THRESHOLD)
    raise ValueError(f"unknown tier {tier!r}")


def validate_finite(value: float) -> None:
    """Refuse NaN and the infinities. MinValueValidator and MaxValueValidator let
    NaN through: it compares false with every number."""
    if not math.isfinite(value):
        raise ValidationError(
            _("Enter a finite number, not %(value)s."), code="finite", params={"value": value}
        )


def metadata_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON in UTF-8: what ``MAX_METADATA_BYTES`` bounds."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def validate_metadata_size(value: Any) -> None:
    """Refuse metadata over ``MAX_METADATA_BYTES`` (read when validating, not at import)."""
    limit = get_config()["MAX_METADATA_BYTES"]
    size = metadata_size(value)
    if size > limit:
        raise ValidationError(
            _(
                "Metadata of %(size)s bytes (as compact JSON); "
                "at most %(limit)s are allowed (MAX_METADATA_BYTES)."
            ),
            code="metadata_size",
            params={"size": f"{size:,}", "limit": f"{limit:,}"},
        )


def _empty_metadata() -> dict[str, Any]:
    return {}


class Node(models.Model):
    content = models.TextField(
        _("content"), validators=[MaxLengthValidator(MAX_CONTENT_LENGTH)]
    )
    node_type = models.CharField(_("node type"), max_length=16, choices=NodeType.choices)
    momentum = models.FloatField(
        _("momentum"),
        default=1.0,
        validators=[validate_finite, MinValueValidator(0.0), MaxValueValidator(1.0)],
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_accessed = models.DateTimeField(_("last accessed"), default=timezone.now)
    # The moment through which decay has been applied: decay counts only the
    # time after it, so the same hours are never counted twice.
    decayed_at = models.DateTimeField(_("decayed at"), default=timezone.now)
    metadata = models.JSONField(
        _("metadata"),
        default=_empty_metadata,
        blank=True,
        validators=[validate_metadata_size],
    )

    class Meta:
        verbose_name = _("node")
        verbose_name_plural = _("nodes")
        ordering: ClassVar = ["-momentum", "-id"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(momentum__gte=0.0) & Q(momentum__lte=1.0),
                name="graphapp_node_momentum_0_1",
            ),
            models.CheckConstraint(
                condition=Q(node_type__in=NodeType.values),
                name="graphapp_node_type_known",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["momentum"], name="graphapp_node_momentum"),
            models.Index(fields=["node_type", "momentum"], name="graphapp_node_type_momentum"),
            models.Index(fields=["created_at"], name="graphapp_node_created"),
        ]

    # The momentum the database holds for this instance, as far as it knows (None:
    # unknown, e.g. not loaded). The change receivers compare against it to tell
    # a tier change without querying the old row on every save.
    _saved_momentum: float | None = None

    def __str__(self) -> str:
        return f"{self.node_type} #{self.pk}: {self.excerpt()}"

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Node:
        # **kwargs: Django 6.1 passes fetch_mode (and deprecates overrides without it).
        node = super().from_db(db, field_names, values, **kwargs)
        if "momentum" in field_names:
            node._saved_momentum = node.momentum
        return node

    def refresh_from_db(
        self,
        using: str | None = None,
        fields: Iterable[str] | None = None,
        from_queryset: QuerySet[Node] | None = None,
    ) -> None:
        fields = None if fields is None else list(fields)
        super().refresh_from_db(using, fields, from_queryset)
        if fields is None or "momentum" in fields:
            self._saved_momentum = self.momentum

    @property
    def tier(self) -> Tier:
        return tier_of(self.momentum)

    def excerpt(self, length: int = 60) -> str:
        text = " ".join(self.content.split())
        return text if len(text) <= length else text[: length - 1] + "\u2026"

    def age(self, now: datetime.datetime | None = None) -> datetime.timedelta:
        return (now or timezone.now()) - self.created_at


RELATION_PATTERN: Final = r"\A[a-z][a-z0-9_]{0,63}\Z"  # \Z: "$" would let "x\n" pass


class Edge(models.Model):
    # No index of its own: graphapp_edge_source_weight and the unique pair both
    # start with source_id.
    source = models.ForeignKey(
        Node,
        on_delete=models.CASCADE,
        related_name="outgoing",
        db_index=False,
        verbose_name=_("source"),
    )
    target = models.ForeignKey(
        Node, on_delete=models.CASCADE, related_name="incoming", verbose_name=_("target")
    )
    relation = models.CharField(
        _("relation"),
        max_length=64,
        default="relates_to",
        validators=[RegexValidator(RELATION_PATTERN, _("Use snake_case, e.g. relates_to."))],
        help_text=_(
            "e.g. relates_to, same_file, same_cycle, semantic, implements, improves, depends_on"
        ),
    )
    weight = models.FloatField(
        _("weight"),
        default=1.0,
        validators=[
            validate_finite,
            MinValueValidator(WEIGHT_MIN),
            MaxValueValidator(WEIGHT_MAX),
        ],
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("edge")
        verbose_name_plural = _("edges")
        ordering: ClassVar = ["id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["source", "target"], name="graphapp_edge_one_per_pair"),
            # PostgreSQL orders NaN above every number, so it fails "<=";
            # SQLite stores NaN as NULL, which the column refuses.
            models.CheckConstraint(
                condition=Q(weight__gte=WEIGHT_MIN) & Q(weight__lte=WEIGHT_MAX),
                name="graphapp_edge_weight_0_1",
            ),
        ]
        indexes: ClassVar = [
            # Covers the statistics' outgoing aggregate (an index-only scan in
            # source order, see stats.py) and lookups by source.
            models.Index(fields=["source", "weight"], name="graphapp_edge_source_weight"),
        ]

    def __str__(self) -> str:
        return f"#{self.source_id} -[{self.relation}]-> #{self.target_id}"


class HistoryPoint(models.Model):
    """One published snapshot's totals, kept for ``HISTORY_WINDOW`` (graphapp.history).

    ``at_ms`` is the snapshot's own time in milliseconds since the epoch: an
    integer, so that both databases bucket points with the same integer division.
    """

    version = models.BigIntegerField(primary_key=True)
    at_ms = models.BigIntegerField(db_index=True)
    nodes = models.BigIntegerField()
    edges = models.BigIntegerField(null=True)
    tiers = models.JSONField()
    types = models.JSONField()

    class Meta:
        ordering: ClassVar = ["version"]

    def __str__(self) -> str:
        return f"version {self.version}: {self.nodes} nodes"


class LoggedChanges(models.Model):
    """The node changes of one publication, kept for replay (graphapp.replay).

    ``data`` is the ``change`` event's data as it was sent. A row with empty
    ``data`` marks where the log was pruned: the changes up to its version are
    no longer held.
    """

    # Not the key: two processes may publish different changes under one version.
    version = models.BigIntegerField(db_index=True)
    at_ms = models.BigIntegerField(db_index=True)
    data = models.TextField()

    class Meta:
        ordering: ClassVar = ["version", "id"]
        verbose_name_plural = _("logged changes")

    def __str__(self) -> str:
        return f"changes up to version {self.version}"
