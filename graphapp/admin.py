"""The admin for nodes and edges, with the live statistics panel on the node list
(and on the admin's index, see ``apps.py``), and filters that show live counts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import (
    Count,
    Field,
    FloatField,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from graphapp import operations
from graphapp.forms import number_bounds
from graphapp.models import Edge, Node, NodeType, Tier, tier_q

# Django's admin classes are generic only in django-stubs, not at run time.
if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices as FilterChoice

    NodeAdminBase = admin.ModelAdmin[Node]
    EdgeAdminBase = admin.ModelAdmin[Edge]
    EdgeInlineBase = admin.TabularInline[Edge, Node]
    FormFieldOverrides = Mapping[type[Field[Any, Any]], Mapping[str, Any]]
else:
    NodeAdminBase = EdgeAdminBase = admin.ModelAdmin
    EdgeInlineBase = admin.TabularInline
    FilterChoice = dict


LIVE_FILTER_TEMPLATE = "graphapp/admin/live_filter.html"

# Each model has one float field: its form field gets the model's bounds.
WEIGHT_FORM_FIELD: FormFieldOverrides = {FloatField: number_bounds(Edge._meta.get_field("weight"))}
MOMENTUM_FORM_FIELD: FormFieldOverrides = {
    FloatField: number_bounds(Node._meta.get_field("momentum"))
}


def _with_live_keys(
    choices: Iterator[FilterChoice], group: str, values: list[str]
) -> Iterator[FilterChoice]:
    """The filter's choices ("All" first, then one per value), each value's with the
    key of its count in a snapshot, which the live panel keeps current."""
    for index, choice in enumerate(choices):
        value = values[index - 1] if 0 < index <= len(values) else ""
        extra = cast(dict[str, Any], choice)
        extra["live_key"] = f"{group}.{value}" if value else ""
        extra["key_class"] = value.lower()
        yield choice


class TierFilter(admin.SimpleListFilter):
    title = _("tier")
    parameter_name = "tier"
    template = LIVE_FILTER_TEMPLATE

    def choices(self, changelist: ChangeList) -> Iterator[FilterChoice]:
        return _with_live_keys(super().choices(changelist), "tiers", list(Tier.values))

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(tier.value, str(tier.label)) for tier in Tier]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(tier_q(value)) if value in Tier.values else queryset


class NodeTypeFilter(admin.ChoicesFieldListFilter):
    template = LIVE_FILTER_TEMPLATE

    def choices(self, changelist: ChangeList) -> Iterator[FilterChoice]:
        return _with_live_keys(super().choices(changelist), "types", list(NodeType.values))


class OutgoingEdgeInline(EdgeInlineBase):
    formfield_overrides = WEIGHT_FORM_FIELD
    model = Edge
    fk_name = "source"
    verbose_name = _("outgoing edge")
    verbose_name_plural = _("outgoing edges")
    raw_id_fields = ("target",)
    readonly_fields = ("created_at",)
    extra = 0


class IncomingEdgeInline(EdgeInlineBase):
    formfield_overrides = WEIGHT_FORM_FIELD
    model = Edge
    fk_name = "target"
    verbose_name = _("incoming edge")
    verbose_name_plural = _("incoming edges")
    raw_id_fields = ("source",)
    readonly_fields = ("created_at",)
    extra = 0


def _count(direction: str) -> Subquery:
    edges = Edge.objects.filter(**{direction: OuterRef("pk")}).order_by().values(direction)
    return Subquery(edges.annotate(n=Count("*")).values("n"), output_field=IntegerField())


@admin.register(Node)
class NodeAdmin(NodeAdminBase):
    formfield_overrides = MOMENTUM_FORM_FIELD
    change_list_template = "graphapp/admin/node_change_list.html"
    list_display = ("excerpt", "node_type", "tier", "momentum", "age", "degree")
    list_filter = (("node_type", NodeTypeFilter), TierFilter)
    search_fields = ("content",)
    readonly_fields = ("created_at", "last_accessed", "decayed_at")
    inlines: ClassVar = [OutgoingEdgeInline, IncomingEdgeInline]
    actions = ("activate_nodes", "decay_nodes", "prune_cold_nodes")
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Node]:
        degree = Coalesce(_count("source"), 0) + Coalesce(_count("target"), 0)
        return super().get_queryset(request).annotate(degree=degree)

    @admin.display(description=_("content"), ordering="content")
    def excerpt(self, node: Node) -> str:
        return node.excerpt()

    @admin.display(description=_("tier"), ordering="momentum")
    def tier(self, node: Node) -> str:
        return str(node.tier.label)

    @admin.display(description=_("age"), ordering="-created_at")
    def age(self, node: Node) -> str:
        return timesince(node.created_at)

    @admin.display(description=_("degree"), ordering="degree")
    def degree(self, node: Node) -> int:
        return int(getattr(node, "degree", 0))

    @admin.action(description=_("Activate (boost) the selected nodes"), permissions=["change"])
    def activate_nodes(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        count = operations.activate(queryset)
        message = ngettext("Activated %(count)d node.", "Activated %(count)d nodes.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Apply decay to the selected nodes"), permissions=["change"])
    def decay_nodes(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        count = operations.decay(queryset)
        message = ngettext(
            "Applied decay to %(count)d node.", "Applied decay to %(count)d nodes.", count
        )
        self.message_user(request, message % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Prune the selected cold nodes"), permissions=["delete"])
    def prune_cold_nodes(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        count = operations.prune(queryset.filter(tier_q(Tier.COLD)))
        message = ngettext(
            "Pruned %(count)d cold node and its edges.",
            "Pruned %(count)d cold nodes and their edges.",
            count,
        )
        self.message_user(request, message % {"count": count}, messages.SUCCESS)


@admin.register(Edge)
class EdgeAdmin(EdgeAdminBase):
    formfield_overrides = WEIGHT_FORM_FIELD
    list_display = ("id", "source", "relation", "target", "weight", "created_at")
    list_filter = ("relation",)
    search_fields = ("source__content", "target__content", "relation")
    raw_id_fields = ("source", "target")
    readonly_fields = ("created_at",)
    list_select_related = ("source", "target")
