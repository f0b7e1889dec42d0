"""The admin for nodes and edges, with the live statistics panel on the node list
(and on the admin's index, see ``apps.py``), and filters that show live counts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters, InlineModelAdmin
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
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.http import urlencode
from django.utils.text import capfirst
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


class EdgeInline(EdgeInlineBase):
    """A node's edges in one direction, editable on its change page while they
    are at most ``max_num``; NodeAdmin shows a summary instead beyond that."""

    direction: ClassVar[str]  # "outgoing" or "incoming", as the edges' related name
    fk_name: str  # the foreign key to the node whose page shows the edges
    other_end: ClassVar[str]  # the foreign key to the node at their far end

    formfield_overrides = WEIGHT_FORM_FIELD
    model = Edge
    readonly_fields = ("created_at",)
    extra = 0
    # Each row posts about six fields, and Django refuses a request of more than
    # DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000 by default): a node with 200 edges
    # shown as rows could not be saved, and 20,000 made a page of 39 MB.
    max_num = 20

    @classmethod
    def edges_of(cls, node: Node) -> QuerySet[Edge]:
        return Edge.objects.filter(**{f"{cls.fk_name}_id": node.pk})

    @classmethod
    def fit(cls, node: Node) -> bool:
        """Whether the node's edges fit as rows, counting no further than that."""
        if cls.max_num is None:
            return True
        return cls.edges_of(node)[: cls.max_num + 1].count() <= cls.max_num


class OutgoingEdgeInline(EdgeInline):
    direction = "outgoing"
    fk_name = "source"
    other_end = "target"
    verbose_name = _("outgoing edge")
    verbose_name_plural = _("outgoing edges")
    raw_id_fields = ("target",)


class IncomingEdgeInline(EdgeInline):
    direction = "incoming"
    fk_name = "target"
    other_end = "source"
    verbose_name = _("incoming edge")
    verbose_name_plural = _("incoming edges")
    raw_id_fields = ("source",)


def _as_rows(request: HttpRequest, node: Node, inline: type[EdgeInline]) -> bool:
    """Whether the node's edges in this direction are rows: while they fit, and on
    a save only if the page posted them (it had a summary when it was opened)."""
    if request.method == "POST" and f"{inline.direction}-TOTAL_FORMS" not in request.POST:
        return False
    return inline.fit(node)


@dataclass(frozen=True)
class EdgeSummary:
    """One direction of a node's edges, too many to edit as rows: their count,
    the heaviest few with their far ends, and the links to the rest."""

    direction: str
    title: str
    verbose_name: str
    far_label: str
    count: int
    heaviest: list[tuple[Edge, Node]]
    changelist_url: str
    add_url: str  # "" without the permission to add edges

    @property
    def count_text(self) -> str:
        return number_format(self.count, force_grouping=True)

    @property
    def relation_label(self) -> str:
        return _field_label("relation")

    @property
    def weight_label(self) -> str:
        return _field_label("weight")


def _field_label(name: str) -> str:
    return str(cast("Field[Any, Any]", Edge._meta.get_field(name)).verbose_name)


def _shortened(items: list[Any], most: int) -> list[Any]:
    """Django's nested list of what a delete takes with it, each level cut to its
    first ``most`` objects and a line for the rest (the page's counts by model
    stay whole): a node's 20,000 edges made a page of 1.9 MB."""
    shown: list[Any] = []
    objects = 0
    for item in items:
        if isinstance(item, list):  # the objects the one before it takes along
            if objects <= most:
                shown.append(_shortened(item, most))
            continue
        objects += 1
        if objects <= most:
            shown.append(item)
    if objects > most:
        rest = objects - most
        more = ngettext("… and %(count)s more object", "… and %(count)s more objects", rest)
        shown.append(more % {"count": number_format(rest, force_grouping=True)})
    return shown


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
    change_form_template = "graphapp/admin/node_change_form.html"
    actions = ("activate_nodes", "decay_nodes", "prune_cold_nodes")
    list_per_page = 50
    # How many edges a direction's summary lists (see EdgeInline), the heaviest first.
    edge_summary_size = 10
    # How many objects each level of a delete's confirmation lists.
    deleted_objects_shown = 20

    def get_inlines(
        self, request: HttpRequest, obj: Node | None
    ) -> list[type[InlineModelAdmin[Any, Any]]]:
        inlines = list(super().get_inlines(request, obj))
        if obj is None:
            return inlines
        return [i for i in inlines if not issubclass(i, EdgeInline) or _as_rows(request, obj, i)]

    def get_deleted_objects(
        self, objs: Sequence[Node] | QuerySet[Node], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return _shortened(deleted, self.deleted_objects_shown), counts, perms_needed, protected

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        saved = {formset.prefix for formset in formsets}
        for inline in self._edge_inlines(request, form.instance):
            posted = f"{inline.direction}-TOTAL_FORMS" in request.POST
            if posted and inline.direction not in saved:
                # Past max_num since the page was opened: its rows were not read.
                message = _(
                    "The %(edges)s grew too many to edit while the page was open: "
                    "changes to their rows were not saved."
                )
                edges = inline.verbose_name_plural
                self.message_user(request, message % {"edges": edges}, messages.WARNING)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Node | None = None,
    ) -> HttpResponse:
        if obj is not None:
            shown = {type(formset.opts) for formset in context.get("inline_admin_formsets", [])}
            context["edge_summaries"] = [
                self.edge_summary(request, obj, inline)
                for inline in self._summarised(request, obj, shown)
            ]
            context["edge_opts"] = Edge._meta
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _summarised(
        self, request: HttpRequest, node: Node, shown: set[type[Any]]
    ) -> Iterator[EdgeInline]:
        """The edge inlines left out for their size that the user may see."""
        for inline_class in self._edge_inlines(request, node):
            if inline_class not in shown:
                inline = inline_class(self.model, self.admin_site)
                if inline.has_view_or_change_permission(request, node):
                    yield inline

    def _edge_inlines(self, request: HttpRequest, node: Node) -> Iterator[type[EdgeInline]]:
        """The edge inlines the node's page would have, whatever their size."""
        for inline in super().get_inlines(request, node):
            if issubclass(inline, EdgeInline):
                yield inline

    def edge_summary(self, request: HttpRequest, node: Node, inline: EdgeInline) -> EdgeSummary:
        edges = inline.edges_of(node)
        heaviest = edges.select_related(inline.other_end).order_by("-weight", "-id")
        add_url = ""
        if inline.has_add_permission(request, node):
            add_url = self._edge_url("add", {inline.fk_name: node.pk})
        return EdgeSummary(
            direction=inline.direction,
            title=capfirst(str(inline.verbose_name_plural)),
            verbose_name=str(inline.verbose_name),
            far_label=_field_label(inline.other_end),
            count=edges.count(),
            heaviest=[
                (edge, getattr(edge, inline.other_end))
                for edge in heaviest[: self.edge_summary_size]
            ],
            changelist_url=self._edge_url("changelist", {f"{inline.fk_name}__id__exact": node.pk}),
            add_url=add_url,
        )

    def _edge_url(self, view: str, query: dict[str, int]) -> str:
        path = reverse(f"admin:graphapp_edge_{view}", current_app=self.admin_site.name)
        return f"{path}?{urlencode(query)}"

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


class EdgeEndFilter(admin.SimpleListFilter):
    """The edges from (or to) one node, given by its id as the node's change page
    links to them (``?source__id__exact=7``). Its only choice is that node: a
    choice per node would list every node on every page of the edge list."""

    end: ClassVar[str]  # the foreign key filtered on

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        node_id = self._node_id()
        if node_id is None:
            return []
        node = Node.objects.filter(pk=node_id).first()
        return [(str(node_id), str(node) if node else f"#{node_id}")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        node_id = self._node_id()
        return queryset if node_id is None else queryset.filter(**{f"{self.end}_id": node_id})

    def _node_id(self) -> int | None:
        value = self.value()
        if value is None:
            return None
        try:
            return int(value)
        except ValueError as error:  # the admin answers with its "?e=1" page
            raise IncorrectLookupParameters(error) from error


class SourceFilter(EdgeEndFilter):
    title = _("source")
    parameter_name = "source__id__exact"
    end = "source"


class TargetFilter(EdgeEndFilter):
    title = _("target")
    parameter_name = "target__id__exact"
    end = "target"


@admin.register(Edge)
class EdgeAdmin(EdgeAdminBase):
    formfield_overrides = WEIGHT_FORM_FIELD
    list_display = ("id", "source", "relation", "target", "weight", "created_at")
    list_filter = ("relation", SourceFilter, TargetFilter)
    search_fields = ("source__content", "target__content", "relation")
    raw_id_fields = ("source", "target")
    readonly_fields = ("created_at",)
    list_select_related = ("source", "target")
