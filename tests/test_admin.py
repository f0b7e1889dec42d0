"""graphapp.admin at scale: a node's edges on its change page, and the edge list.

Through Django's test client, signed in: a node with thousands of edges has a
small change page that saves, its few edges stay editable as rows, and the
summary's links lead to the edge list filtered on the node.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import ClassVar

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.test import Client, RequestFactory

from graphapp.admin import EdgeInline, IncomingEdgeInline, NodeAdmin, OutgoingEdgeInline
from graphapp.models import Edge, Node
from tests.factories import hub

pytestmark = pytest.mark.django_db

# The change page of a node without edges is about 20 KB; the summary adds ten rows.
PAGE_BOUND = 60_000
ROWS = EdgeInline.max_num


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", "", "unused"))
    return client


def change_path(node: Node) -> str:
    return f"/admin/graphapp/node/{node.pk}/change/"


class FormFields(HTMLParser):
    """The fields a browser posts from a page: named inputs (checkboxes when
    checked), selects (their selected option) and textareas, with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        name = named.get("name")
        kind = named.get("type")
        if not name and tag != "option":
            return
        if tag == "input" and kind != "submit" and (kind != "checkbox" or "checked" in named):
            self.fields[str(name)] = named.get("value") or ("on" if kind == "checkbox" else "")
        elif tag == "select":
            self._select = name
            self.fields[str(name)] = ""
        elif tag == "option" and self._select and "selected" in named:
            self.fields[self._select] = named.get("value") or ""
        elif tag == "textarea":
            self._textarea = name
            self.fields[str(name)] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_of(page: bytes) -> dict[str, str]:
    parser = FormFields()
    parser.feed(page.decode())
    return {name: value.removeprefix("\n") for name, value in parser.fields.items()}


def summary_links(page: bytes, direction: str) -> list[str]:
    section = page.decode().split(f'id="{direction}-summary"', 1)[1].split("</fieldset>", 1)[0]
    return re.findall(r'href="([^"]+)"', section)


@pytest.mark.parametrize(("direction", "edges"), [("incoming", 20_000), ("outgoing", 200)])
def test_a_node_with_many_edges_has_a_small_change_page_that_saves(
    staff: Client, direction: str, edges: int
) -> None:
    node = hub(edges, direction=direction)

    page = staff.get(change_path(node))

    assert page.status_code == 200
    assert len(page.content) < PAGE_BOUND
    form = form_of(page.content)
    assert f"{direction}-TOTAL_FORMS" not in form  # no rows for these edges
    assert len(form) < 50
    assert f"{edges:,} edges, too many to edit on this page" in page.text
    assert len(summary_links(page.content, direction)) == 2 * 10 + 2  # ten edges, all, add

    form["content"] = "the hub, renamed"
    saved = staff.post(change_path(node), form)

    assert saved.status_code == 302, saved.content[:2000]
    node.refresh_from_db()
    assert node.content == "the hub, renamed"
    end = "target" if direction == "incoming" else "source"
    assert Edge.objects.filter(**{end: node}).count() == edges


def test_a_node_with_few_edges_edits_them_as_rows(staff: Client) -> None:
    node = hub(ROWS, direction="outgoing")
    edge = Edge.objects.filter(source=node).order_by("id").first()
    assert edge is not None

    page = staff.get(change_path(node))
    form = form_of(page.content)

    assert form["outgoing-TOTAL_FORMS"] == str(ROWS)
    assert form["outgoing-MAX_NUM_FORMS"] == str(ROWS)  # no row added past the bound
    assert 'id="outgoing-summary"' not in page.text
    row = next(key for key, value in form.items() if key.endswith("-id") and value == str(edge.pk))
    form[row.replace("-id", "-weight")] = "0.9"
    saved = staff.post(change_path(node), form)

    assert saved.status_code == 302, saved.content[:2000]
    edge.refresh_from_db()
    assert edge.weight == 0.9


def test_one_edge_past_the_rows_makes_a_summary(staff: Client) -> None:
    node = hub(ROWS + 1, direction="incoming")

    page = staff.get(change_path(node))

    assert 'id="incoming-summary"' in page.text
    assert "incoming-TOTAL_FORMS" not in form_of(page.content)
    assert "outgoing-TOTAL_FORMS" in form_of(page.content)  # the other direction: rows


def test_the_summary_lists_the_heaviest_edges_and_links_to_the_filtered_list(
    staff: Client,
) -> None:
    node = hub(300, direction="incoming", weight=0.25)
    heavy = list(Edge.objects.filter(target=node).order_by("id")[:3])
    for position, edge in enumerate(heavy):
        edge.weight = 0.9 - position / 10
        edge.save()
    hub(50, direction="incoming")  # another node's edges, not in its list

    page = staff.get(change_path(node))
    links = summary_links(page.content, "incoming")

    assert links[0:6:2] == [f"/admin/graphapp/edge/{edge.pk}/change/" for edge in heavy]
    assert links[1] == f"/admin/graphapp/node/{heavy[0].source_id}/change/"
    every, add = links[-2:]
    assert every == f"/admin/graphapp/edge/?target__id__exact={node.pk}"
    listing = staff.get(every)
    assert listing.status_code == 200
    assert re.search(r"\b300 edges\b", listing.text)
    assert listing.text.count('name="_selected_action"') == 100  # a page of them
    assert f"?p=3&amp;target__id__exact={node.pk}" in listing.text
    assert str(node) in listing.text  # the filter names the node
    counted = staff.get(f"{every}&_facets=True")
    assert f"{node} (300)" in counted.text
    adding = staff.get(add.replace("&amp;", "&"))
    assert form_of(adding.content)["target"] == str(node.pk)


def test_the_edge_list_filters_on_the_source(staff: Client) -> None:
    node = hub(120, direction="outgoing")
    hub(30, direction="outgoing")

    listing = staff.get(f"/admin/graphapp/edge/?source__id__exact={node.pk}")

    assert re.search(r"\b120 edges\b", listing.text)


@pytest.mark.parametrize("value", ["x", "1.5", ""])
def test_the_edge_list_refuses_a_node_that_is_not_an_id(staff: Client, value: str) -> None:
    answer = staff.get(f"/admin/graphapp/edge/?target__id__exact={value}")

    assert answer.status_code == 302
    assert answer["Location"].endswith("?e=1")


def test_the_edge_list_of_a_deleted_node_is_empty(staff: Client) -> None:
    hub(5, direction="incoming")

    listing = staff.get("/admin/graphapp/edge/?target__id__exact=999999")

    assert re.search(r"\b0 edges\b", listing.text)
    assert "#999999" in listing.text


def test_the_edge_forms_never_list_every_node(staff: Client) -> None:
    node = hub(30, direction="outgoing")
    edge = Edge.objects.filter(source=node).first()
    assert edge is not None

    for path in ("/admin/graphapp/edge/add/", f"/admin/graphapp/edge/{edge.pk}/change/"):
        page = staff.get(path).text
        assert "<select" not in page.split('name="relation"')[0]  # none before the relation
        assert re.search(r'<input type="text" name="source" [^>]*vForeignKeyRawIdAdminField', page)
        assert re.search(r'<input type="text" name="target" [^>]*vForeignKeyRawIdAdminField', page)
        assert "spoke 29" not in page.replace(str(edge.target), "")


def test_a_user_who_may_not_see_edges_gets_no_summary(client: Client) -> None:
    node = hub(ROWS + 5, direction="incoming")
    editor = User.objects.create_user("nodes-only", is_staff=True)
    editor.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_node", "change_node"])
    )
    client.force_login(editor)

    page = client.get(change_path(node))

    assert page.status_code == 200
    assert "incoming-summary" not in page.text
    assert "spoke" not in page.text


def test_the_summary_in_german(staff: Client) -> None:
    node = hub(1_200, direction="outgoing")

    page = staff.get(change_path(node), headers={"Accept-Language": "de"})

    assert "Ausgehende Kanten" in page.text
    assert "1.200 Kanten, zu viele, um sie auf dieser Seite zu bearbeiten." in page.text
    assert "Alle 1.200 in der Kantenliste zeigen" in page.text
    assert "ausgehende Kante hinzufügen" in page.text


class FiveRows(OutgoingEdgeInline):
    max_num = 5


class SmallerNodeAdmin(NodeAdmin):
    inlines: ClassVar = [FiveRows, IncomingEdgeInline]
    edge_summary_size = 3


@pytest.mark.parametrize(("edges", "summarised"), [(5, False), (6, True)])
def test_a_subclass_sets_the_bounds(rf: RequestFactory, edges: int, summarised: bool) -> None:
    node = hub(edges, direction="outgoing")
    request = rf.get(change_path(node))
    request.user = User.objects.create_superuser("root", "", "unused")

    page = SmallerNodeAdmin(Node, admin.site).change_view(request, str(node.pk))
    html = page.render().content

    assert ('id="outgoing-summary"' in html.decode()) is summarised
    if summarised:
        assert len(summary_links(html, "outgoing")) == 2 * 3 + 2
    else:
        assert form_of(html)["outgoing-TOTAL_FORMS"] == "5"


def test_a_node_with_many_edges_is_deleted_through_a_short_confirmation(staff: Client) -> None:
    node = hub(20_000, direction="incoming")
    other = hub(3, direction="outgoing")
    path = f"/admin/graphapp/node/{node.pk}/delete/"

    page = staff.get(path)

    assert len(page.content) < PAGE_BOUND
    assert "… and 19,980 more objects" in page.text
    assert re.search(r"Edges: 20000\b", page.text)  # the counts stay whole
    deleted = staff.post(path, {"post": "yes"})
    assert deleted.status_code == 302
    assert not Node.objects.filter(pk=node.pk).exists()
    assert Edge.objects.count() == 3
    assert Edge.objects.filter(source=other).count() == 3


def test_a_short_confirmation_lists_what_each_node_takes_along(staff: Client) -> None:
    nodes = [hub(25, direction="outgoing") for _ in range(2)]
    action = {"action": "delete_selected", "_selected_action": [str(n.pk) for n in nodes]}

    page = staff.post("/admin/graphapp/node/", action)

    assert page.text.count("… and 5 more objects") == 2  # each node's edges, cut
    assert all(str(n) in page.text for n in nodes)


def test_rows_that_grew_too_many_while_the_page_was_open_are_not_read(staff: Client) -> None:
    node = hub(ROWS, direction="outgoing")
    form = form_of(staff.get(change_path(node)).content)
    first = Edge.objects.filter(source=node).order_by("id").first()
    assert first is not None
    Edge.objects.create(source=node, target=Node.objects.create(content="late", node_type="FACT"))
    form["outgoing-0-weight"] = "0.9"
    form["content"] = "saved meanwhile"

    saved = staff.post(change_path(node), form, follow=True)

    assert "changes to their rows were not saved" in saved.text
    node.refresh_from_db()
    assert node.content == "saved meanwhile"
    first.refresh_from_db()
    assert first.weight == 0.5


def test_a_summary_that_shrank_to_rows_while_the_page_was_open_still_saves(
    staff: Client,
) -> None:
    node = hub(ROWS + 1, direction="incoming")
    form = form_of(staff.get(change_path(node)).content)
    Edge.objects.filter(target=node).order_by("id")[0].delete()
    form["content"] = "saved meanwhile"

    saved = staff.post(change_path(node), form)

    assert saved.status_code == 302
    node.refresh_from_db()
    assert node.content == "saved meanwhile"
    assert Edge.objects.filter(target=node).count() == ROWS
