"""Bad input everywhere, as properties (hypothesis): the JSON API and graph_import.

Every invalid input gets a clear error, an HTTP 400 whose JSON names the field
and why or a CommandError that names the record and why, and leaves every row
of the database as it was; every valid input is stored exactly as sent.

The API is called in-process with Django's test client (the real views,
middleware and database, no server), for speed. ``HYPOTHESIS_PROFILE=thorough``
runs ten times as many examples.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphapp.conf import MIN_LIST_BYTES
from graphapp.forms import MAX_METADATA_DEPTH
from graphapp.models import (
    MAX_CONTENT_LENGTH,
    RELATION_PATTERN,
    Edge,
    Node,
    NodeType,
    Tier,
    metadata_size,
)
from tests.factories import editor_client
from tests.live import LiveServer, csrf_headers, logged_in

settings.register_profile(
    "graphapp",
    deadline=None,
    max_examples=40,
    # The database fixtures are made once per test and shared by its examples on
    # purpose: every invalid example must leave them exactly as they are.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("thorough", parent=settings.get_profile("graphapp"), max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "graphapp"))

pytestmark = pytest.mark.django_db

NODES = "/graph/api/nodes/"
FIELDS = ("content", "node_type", "momentum", "metadata")
QUERY_FIELDS = ("type", "tier", "limit")
Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]
WriteFile = Callable[[bytes], Path]

# -- Strategies: valid input -----------------------------------------------------------

# Text every database stores as it is (no NUL, no lone surrogates: hypothesis'
# text() makes those only when asked), with right-to-left and other tricky pieces.
TRICKY = [
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic
    "\ufeff",  # byte order mark
    "\u2028",  # line separator
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a ZWJ sequence
    "e\u0301",  # a combining accent
    "\uffff",  # a non-character
    "\U0010ffff",  # the last code point
    "\r\n",
    '"\\',
    "</script>",
    " ",
]
storable_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
storable_text = st.lists(
    st.one_of(st.text(storable_chars, max_size=12), st.sampled_from(TRICKY)), max_size=6
).map("".join)


def fill(piece: str, length: int) -> str:
    """``piece`` repeated to exactly ``length`` characters."""
    return (piece * (length // len(piece) + 1))[:length]


non_blank = storable_text.filter(lambda text: bool(text.strip()))
contents = st.one_of(
    non_blank,
    # Up to and at the limit, counted in characters (code points), not bytes.
    st.builds(fill, non_blank, st.integers(MAX_CONTENT_LENGTH - 20, MAX_CONTENT_LENGTH)),
)
node_types = st.sampled_from(NodeType.values)
momenta = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1, 0.4, 0.8, 0.7999, 5e-324]))
# Edge weights: the same range (graphapp.models.WEIGHT_MIN, WEIGHT_MAX).
weights = momenta
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    finite_floats,
    storable_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(storable_text, children, max_size=4)
    ),
    max_leaves=12,
)
metadatas = st.dictionaries(storable_text, json_values, max_size=5)
valid_nodes = st.fixed_dictionaries(
    {"content": contents, "node_type": node_types},
    optional={"momentum": momenta, "metadata": metadatas},
)

# -- Strategies: invalid input ---------------------------------------------------------

json_numbers = st.one_of(st.integers(-(10**30), 10**30), finite_floats)
json_lists = st.lists(json_scalars, max_size=3)
json_objects = st.dictionaries(storable_text, json_scalars, max_size=3)
WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "content": st.one_of(st.none(), st.booleans(), json_numbers, json_lists, json_objects),
    "node_type": st.one_of(st.none(), st.booleans(), json_numbers, json_lists, json_objects),
    "momentum": st.one_of(st.none(), st.booleans(), storable_text, json_lists, json_objects),
    "metadata": st.one_of(st.none(), st.booleans(), json_numbers, storable_text, json_lists),
}
lone_surrogates = st.characters(categories=["Cs"])


@st.composite
def with_bad_character(draw: st.DrawFn, text: st.SearchStrategy[str] = storable_text) -> str:
    """Text with a NUL or a lone surrogate somewhere in it."""
    base = draw(text)
    bad = draw(st.one_of(st.just("\x00"), lone_surrogates))
    at = draw(st.integers(0, len(base)))
    return base[:at] + bad + base[at:]


# What no database stores as it is: empty or blank, over the limit (also in
# megabytes, still under the request size limit), NUL, lone surrogates.
oversized_contents = st.one_of(
    st.builds(fill, non_blank, st.integers(MAX_CONTENT_LENGTH + 1, 200_000)),
    st.integers(MAX_CONTENT_LENGTH + 1, 2_500_000).map(lambda length: "x" * length),
)
unstorable_contents = st.one_of(
    st.just(""),
    with_bad_character(),
    with_bad_character(contents),
    oversized_contents,
)
blank_contents = st.text(st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2028\u3000"), max_size=10)
bad_contents = st.one_of(unstorable_contents, blank_contents)
bad_node_types = st.one_of(
    storable_text,
    with_bad_character(),
    node_types.map(str.lower),
    node_types.map(lambda name: f" {name}"),
    node_types.map(lambda name: f"{name}\n"),
).filter(lambda name: name not in NodeType.values)


def body(document: Any) -> bytes:
    """JSON as a client sends it (lone surrogates escaped as \\udxxx, NaN as NaN)."""
    return json.dumps(document).encode()


# A string json.dumps writes as it is, to put raw JSON text in its place.
SLOT = "\ue000slot\ue000"
SLOT_JSON = json.dumps(SLOT)


def with_raw(document: Any, raw: str) -> bytes:
    text = json.dumps(document)
    assert text.count(SLOT_JSON) == 1
    return text.replace(SLOT_JSON, raw).encode()


# The slot, somewhere down in objects and lists.
nested_slot = st.recursive(
    st.just(SLOT),
    lambda inner: st.one_of(
        st.builds(lambda key, value: {key: value}, storable_text, inner),
        st.builds(lambda value: [value], inner),
    ),
    max_leaves=4,
)
too_deep = "[" * (MAX_METADATA_DEPTH + 1) + "]" * (MAX_METADATA_DEPTH + 1)
bad_json_in_metadata = st.one_of(
    st.sampled_from(
        [
            '"a\\u0000b"',
            '"\\ud800"',
            '"x\\udfff"',
            "1e400",
            "-1e999",
            '{"a": 1, "a": 2}',
            '{"\\u0000": 1}',
            '{"\\udbff": 1}',
            too_deep,
        ]
    ),
    with_bad_character().map(json.dumps),
    with_bad_character().map(lambda key: json.dumps({key: 1})),
)

# -- Helpers ---------------------------------------------------------------------------


def database_rows() -> Rows:
    """Every column of every node and edge, in id order."""
    return (
        list(Node.objects.order_by("pk").values_list()),
        list(Edge.objects.order_by("pk").values_list()),
    )


def decimals(value: Any) -> Any:
    """A JSON value with its numbers as exact decimals: PostgreSQL's jsonb keeps the
    number 1e16 but gives it back as 10000000000000000, the same JSON number."""
    return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)


def strict_json(data: bytes | str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"the answer contains {name}, which is not JSON")

    return json.loads(data, parse_constant=refuse)


def assert_messages(errors: Any) -> None:
    """Errors by field: each a non-empty list of non-empty strings."""
    assert isinstance(errors, dict)
    assert errors
    for messages in errors.values():
        assert isinstance(messages, list)
        assert messages
        assert all(isinstance(message, str) and message.strip() for message in messages)


@pytest.fixture
def seeded() -> Rows:
    """A graph that bad input must leave exactly as it is."""
    first = Node.objects.create(content="keep me", node_type="FACT", momentum=0.9)
    second = Node.objects.create(content="and me", node_type="CODE", metadata={"k": [1, "v"]})
    Edge.objects.create(source=first, target=second, relation="implements", weight=0.5)
    return database_rows()


@pytest.fixture
def editor() -> Client:
    return editor_client()


def post(client: Client, data: bytes) -> tuple[int, Any]:
    answer = client.post(NODES, data=data, content_type="application/json")
    assert answer["Content-Type"] == "application/json", answer.content[:300]
    return answer.status_code, strict_json(answer.content)


def assert_refused(client: Client, data: bytes, before: Rows) -> dict[str, Any]:
    """A 400 with errors and not one row changed; returns the errors."""
    status, answer = post(client, data)
    assert status == 400, answer
    assert set(answer) == {"errors"}
    assert database_rows() == before
    errors: dict[str, Any] = answer["errors"]
    return errors


def assert_names(errors: dict[str, Any], fields: set[str]) -> None:
    assert_messages(errors)
    assert fields <= set(errors), errors


# -- POST /graph/api/nodes/: valid input is stored exactly as sent --------------------


def assert_stored_as_sent(created: dict[str, Any], sent: dict[str, Any]) -> None:
    node = Node.objects.get(pk=created["id"])
    stored = {
        "content": node.content,
        "node_type": node.node_type,
        "momentum": node.momentum,
        "metadata": node.metadata,
    }
    for answer in (created, stored):
        assert answer["content"] == sent["content"]
        assert answer["node_type"] == sent["node_type"]
        assert answer["momentum"] == sent.get("momentum", 1.0)
        assert decimals(answer["metadata"]) == decimals(sent.get("metadata", {}))
    assert created["tier"] == node.tier


@given(sent=valid_nodes)
def test_a_valid_node_is_created_with_exactly_what_was_sent(
    editor: Client, sent: dict[str, Any]
) -> None:
    nodes, edges = database_rows()
    status, created = post(editor, body(sent))
    assert status == 201, created
    assert_stored_as_sent(created, sent)
    assert Node.objects.count() == len(nodes) + 1
    assert database_rows()[1] == edges


@given(batch=st.lists(valid_nodes, min_size=1, max_size=8))
def test_a_valid_list_is_created_in_order_with_exactly_what_was_sent(
    editor: Client, batch: list[dict[str, Any]]
) -> None:
    count = Node.objects.count()
    status, answer = post(editor, body(batch))
    assert status == 201, answer
    assert len(answer["nodes"]) == len(batch)
    for created, sent in zip(answer["nodes"], batch, strict=True):
        assert_stored_as_sent(created, sent)
    assert Node.objects.count() == count + len(batch)


# -- POST /graph/api/nodes/: invalid input is refused and changes nothing -------------


def is_not_json(data: bytes) -> bool:
    try:
        strict_json(data)
    except (ValueError, AssertionError, RecursionError):
        return True
    return False


def is_not_even_python_json(data: bytes) -> bool:
    """Not JSON even to Python's json module, which takes NaN and Infinity."""
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return True
    return False


not_json = st.one_of(
    st.binary(max_size=200),
    # Valid documents cut short, or with one byte changed.
    st.builds(lambda data, cut: data[:cut], valid_nodes.map(body), st.integers(0, 200)),
    st.builds(
        lambda data, at, byte: data[:at] + bytes([byte]) + data[at + 1 :],
        valid_nodes.map(body),
        st.integers(0, 60),
        st.integers(0, 255),
    ),
    st.sampled_from(
        [
            b"",
            b" ",
            b"{",
            b"[",
            b"{'content': 'x'}",
            b'{"content": "x",}',
            b"[1,]",
            b'{"content": "\xff\xfe"}',
            b"\xef\xbb\xbf{",
            b"NaN",
            b"[Infinity]",
            b'{"momentum": -Infinity}',
            b"[" * 100_000,
            b'{"a":' * 50_000,
        ]
    ),
).filter(is_not_json)


@given(data=not_json)
def test_bytes_that_are_not_json_are_refused(editor: Client, seeded: Rows, data: bytes) -> None:
    errors = assert_refused(editor, data, seeded)
    assert set(errors) == {"__all__"}
    assert_messages(errors)


not_objects = st.one_of(
    json_scalars,
    st.lists(st.one_of(json_scalars, st.lists(json_values, max_size=3)), max_size=5),
    st.recursive(st.lists(st.none(), max_size=2), lambda inner: st.lists(inner, max_size=2)),
)


@given(document=not_objects)
def test_json_that_is_not_a_node_or_a_list_of_nodes_is_refused(
    editor: Client, seeded: Rows, document: Any
) -> None:
    errors = assert_refused(editor, body(document), seeded)
    if isinstance(document, list) and document:
        assert set(errors) == {str(index) for index in range(len(document))}
        for item_errors in errors.values():
            assert set(item_errors) == {"__all__"}
            assert_messages(item_errors)
    else:
        assert set(errors) == {"__all__"}
        assert_messages(errors)


@st.composite
def wrong_type(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    node = draw(valid_nodes)
    field = draw(st.sampled_from(FIELDS))
    node[field] = draw(WRONG_TYPES[field])
    return node, {field}


@st.composite
def unknown_fields(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    node = draw(valid_nodes)
    names = st.one_of(storable_text, st.sampled_from(["id", "tier", "Content", "content "]))
    extra = draw(
        st.dictionaries(
            names.filter(lambda name: name not in FIELDS), json_values, min_size=1, max_size=3
        )
    )
    return {**node, **extra}, set(extra)


@given(case=wrong_type())
def test_a_field_of_the_wrong_type_is_named(
    editor: Client, seeded: Rows, case: tuple[dict[str, Any], set[str]]
) -> None:
    node, fields = case
    assert_names(assert_refused(editor, body(node), seeded), fields)


@given(case=unknown_fields())
def test_unknown_fields_are_named(
    editor: Client, seeded: Rows, case: tuple[dict[str, Any], set[str]]
) -> None:
    node, extra = case
    errors = assert_refused(editor, body(node), seeded)
    assert_names(errors, extra)
    assert set(errors) == extra


bad_momentum_literals = st.one_of(
    st.sampled_from(
        [
            "1e308",
            "-1e308",
            "1e400",
            "-1e400",
            "1" + "0" * 400,
            "-1",
            "1.0000000001",
            "-0.0000001",
            "true",
            "false",
            "null",
            '"0.5"',
            '"NaN"',
            '"Infinity"',
            "[]",
            "[0.5]",
            "{}",
        ]
    ),
    finite_floats.filter(lambda x: not 0 <= x <= 1).map(repr),
    st.integers(-(10**30), 10**30).filter(lambda x: not 0 <= x <= 1).map(str),
)


@given(node=valid_nodes, literal=bad_momentum_literals)
def test_a_momentum_that_is_not_a_number_from_0_to_1_is_named(
    editor: Client, seeded: Rows, node: dict[str, Any], literal: str
) -> None:
    errors = assert_refused(editor, with_raw({**node, "momentum": SLOT}, literal), seeded)
    assert_names(errors, {"momentum"})


@given(node=valid_nodes, literal=st.sampled_from(["NaN", "Infinity", "-Infinity"]))
def test_nan_and_infinity_are_refused_as_not_json(
    editor: Client, seeded: Rows, node: dict[str, Any], literal: str
) -> None:
    errors = assert_refused(editor, with_raw({**node, "momentum": SLOT}, literal), seeded)
    assert set(errors) == {"__all__"}
    assert literal in errors["__all__"][0]


@given(node=valid_nodes, node_type=bad_node_types)
def test_an_unknown_node_type_is_named(
    editor: Client, seeded: Rows, node: dict[str, Any], node_type: str
) -> None:
    errors = assert_refused(editor, body({**node, "node_type": node_type}), seeded)
    assert_names(errors, {"node_type"})


@given(node=valid_nodes, content=bad_contents)
def test_empty_blank_oversized_or_unstorable_content_is_named(
    editor: Client, seeded: Rows, node: dict[str, Any], content: str
) -> None:
    errors = assert_refused(editor, body({**node, "content": content}), seeded)
    assert_names(errors, {"content"})


@given(node=valid_nodes, slot=nested_slot, raw=bad_json_in_metadata)
def test_metadata_that_no_database_stores_exactly_is_named(
    editor: Client, seeded: Rows, node: dict[str, Any], slot: Any, raw: str
) -> None:
    metadata = {**node.get("metadata", {}), "\ue001": slot}
    errors = assert_refused(editor, with_raw({**node, "metadata": metadata}, raw), seeded)
    assert_names(errors, {"metadata"})


@given(node=valid_nodes, field=st.sampled_from(FIELDS), value=json_scalars)
def test_a_field_given_twice_is_named(
    editor: Client, seeded: Rows, node: dict[str, Any], field: str, value: Any
) -> None:
    first = f"{json.dumps(field)}: {json.dumps(value)}, "
    twice = "{" + (first if field in node else first * 2) + json.dumps(node)[1:]
    errors = assert_refused(editor, twice.encode(), seeded)
    assert_names(errors, {field})


bad_items: st.SearchStrategy[tuple[Any, set[str]]] = st.one_of(
    wrong_type(),
    unknown_fields(),
    st.builds(
        lambda node, content: ({**node, "content": content}, {"content"}), valid_nodes, bad_contents
    ),
    st.builds(
        lambda node, name: ({**node, "node_type": name}, {"node_type"}), valid_nodes, bad_node_types
    ),
    json_scalars.map(lambda value: (value, {"__all__"})),
)


@given(
    batch=st.lists(valid_nodes, max_size=6),
    bad=st.lists(st.tuples(st.integers(0, 6), bad_items), min_size=1, max_size=3),
)
def test_a_list_with_bad_items_saves_nothing_and_names_each_by_index(
    editor: Client,
    seeded: Rows,
    batch: list[dict[str, Any]],
    bad: list[tuple[int, tuple[Any, set[str]]]],
) -> None:
    items: list[tuple[Any, set[str]]] = [(node, set()) for node in batch]
    for at, case in bad:
        items.insert(min(at, len(items)), case)
    errors = assert_refused(editor, body([item for item, _ in items]), seeded)
    expected = {str(index): fields for index, (_, fields) in enumerate(items) if fields}
    assert set(errors) == set(expected)
    for index, fields in expected.items():
        assert_names(errors[index], fields)


@settings(max_examples=4)
@given(piece=non_blank, count=st.integers(1, 300))
def test_a_body_over_the_upload_limit_is_refused(
    editor: Client, seeded: Rows, piece: str, count: int
) -> None:
    limit: int = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    batch = [{"content": fill(piece, limit // count + 1), "node_type": "FACT"}] * count
    data = body(batch if count > 1 else batch[0])
    assert len(data) > limit
    status, answer = post(editor, data)
    assert status == 413, answer
    assert set(answer) == {"error"}
    assert f"{limit:,}" in answer["error"]
    assert database_rows() == seeded


# The limits drawn small, so that examples cross them often and cheaply.
metadata_limits = st.integers(2, 300)
# Metadata that often crosses such a limit: strings of 1- to 4-byte characters.
sized_metadatas = st.one_of(
    metadatas,
    st.dictionaries(
        storable_text,
        st.text(st.sampled_from('x\u00e9\u20ac\U0001f525\n"'), max_size=120),
        min_size=1,
        max_size=3,
    ),
)


@given(node=valid_nodes, metadata=sized_metadatas, limit=metadata_limits)
def test_metadata_is_stored_up_to_max_metadata_bytes_and_refused_beyond(
    editor: Client, seeded: Rows, node: dict[str, Any], metadata: dict[str, Any], limit: int
) -> None:
    sent = {**node, "metadata": metadata}
    with override_settings(GRAPHAPP={"MAX_METADATA_BYTES": limit}):
        if metadata_size(metadata) <= limit:
            status, created = post(editor, body(sent))
            assert status == 201, created
            assert_stored_as_sent(created, sent)
            Node.objects.filter(pk=created["id"]).delete()
        else:
            errors = assert_refused(editor, body(sent), seeded)
            assert set(errors) == {"metadata"}
            assert "MAX_METADATA_BYTES" in errors["metadata"][0]


# Content types a client may send, with a body that is not JSON: whatever the
# type, the answer is a 400 in JSON (multipart and forms are never parsed).
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "text/plain",
            "application/octet-stream",
            "",
        ]
    ),
    st.from_regex(r"\A[a-z]{1,8}/[a-z0-9.+-]{1,12}(; charset=[a-z0-9-]{1,10})?\Z"),
)
forms = st.lists(st.tuples(storable_text, storable_text), max_size=1100).map(
    lambda pairs: "&".join(
        f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode())}" for k, v in pairs
    ).encode()
)


@given(data=st.one_of(not_json, forms.filter(is_not_json)), content_type=content_types)
def test_a_body_that_is_not_json_is_refused_in_json_whatever_its_content_type(
    editor: Client, seeded: Rows, data: bytes, content_type: str
) -> None:
    # generic(): post() would re-encode the bytes in the charset the type names.
    answer = editor.generic("POST", NODES, data, content_type=content_type)
    assert answer.status_code == 400, answer.content[:300]
    assert answer["Content-Type"] == "application/json"
    errors = strict_json(answer.content)["errors"]
    assert set(errors) == {"__all__"}
    assert_messages(errors)
    assert database_rows() == seeded


# -- GET /graph/api/nodes/ -------------------------------------------------------------


def as_received(value: str | bytes) -> str:
    """A query parameter as Django decodes it (invalid UTF-8 replaced)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def query_string(params: dict[str, Any]) -> str:
    def encoded(value: str | bytes) -> str:
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        return quote_from_bytes(raw, safe="")

    return "&".join(f"{encoded(name)}={encoded(value)}" for name, value in params.items())


def is_good_limit(value: str) -> bool:
    digits = value.lstrip("0")
    return (
        re.fullmatch(r"[0-9]+", value) is not None
        and len(digits) <= 3
        and 1 <= int(digits or "0") <= 100
    )


good_queries = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(NodeType.values),
        "tier": st.sampled_from(Tier.values),
        "limit": st.one_of(st.integers(1, 100).map(str), st.sampled_from(["007", "100"])),
    },
)
query_values = st.one_of(storable_text, with_bad_character(), st.binary(max_size=8))
bad_limits = st.one_of(
    query_values,
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        ["0", "101", "1.5", "5.0", "1e2", "0x10", " 5", "5 ", "+5", "\u0663", "10" * 3000]
    ),
).filter(lambda value: not is_good_limit(as_received(value)))


def outside(values: list[str]) -> Callable[[str | bytes], bool]:
    """Whether a parameter, as received, is neither empty nor one of ``values``."""
    return lambda value: as_received(value) not in [*values, ""]


@st.composite
def bad_queries(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """Parameters with at least one bad value or unknown name; the names to blame."""
    allowed = {"type": NodeType.values, "tier": Tier.values}
    params: dict[str, Any] = {}
    for name, values in allowed.items():
        if draw(st.booleans()):
            params[name] = draw(query_values.filter(outside(values)))
    if draw(st.booleans()):
        params["limit"] = draw(bad_limits.filter(lambda v: as_received(v) != ""))
    unknown = draw(
        st.dictionaries(
            st.text(min_size=1).filter(lambda name: name not in QUERY_FIELDS),
            query_values,
            min_size=0 if params else 1,
            max_size=2,
        )
    )
    return {**params, **unknown}, set(params) | set(unknown)


@given(good=good_queries, case=bad_queries())
def test_bad_query_parameters_are_named(
    editor: Client, seeded: Rows, good: dict[str, str], case: tuple[dict[str, Any], set[str]]
) -> None:
    bad, names = case
    answer = editor.get(f"{NODES}?{query_string({**good, **bad})}")
    assert answer.status_code == 400, answer.content[:300]
    errors = strict_json(answer.content)["errors"]
    assert_messages(errors)
    assert set(errors) == names
    assert database_rows() == seeded


@given(name=st.sampled_from(QUERY_FIELDS), values=st.lists(good_queries, min_size=2, max_size=3))
def test_a_query_parameter_given_twice_is_named(
    editor: Client, seeded: Rows, name: str, values: list[dict[str, str]]
) -> None:
    given_twice = [params.get(name, "") for params in values]
    query = "&".join(query_string({name: value}) for value in given_twice)
    answer = editor.get(f"{NODES}?{query}")
    assert answer.status_code == 400
    errors = strict_json(answer.content)["errors"]
    assert_names(errors, {name})


@given(query=good_queries)
def test_good_query_parameters_filter_and_limit(
    editor: Client, seeded: Rows, query: dict[str, str]
) -> None:
    answer = editor.get(f"{NODES}?{query_string(query)}")
    assert answer.status_code == 200
    listed = strict_json(answer.content)["nodes"]
    assert len(listed) <= int(query.get("limit", "10"))
    for node in listed:
        assert node["node_type"] == query.get("type", node["node_type"])
        assert node["tier"] == query.get("tier", node["tier"])


@settings(max_examples=25)
@given(
    stored=st.lists(valid_nodes, min_size=1, max_size=12),
    query=good_queries,
    bound=st.integers(MIN_LIST_BYTES, 40_000),
)
def test_the_nodes_list_is_the_first_nodes_that_fit_in_max_list_bytes(
    editor: Client, stored: list[dict[str, Any]], query: dict[str, str], bound: int
) -> None:
    Node.objects.all().delete()
    assert post(editor, body(stored))[0] == 201
    path = f"{NODES}?{query_string(query)}"
    whole = strict_json(editor.get(path).content)
    assert whole["truncated"] is False
    with override_settings(GRAPHAPP={"MAX_LIST_BYTES": bound}):
        answer = editor.get(path)
    assert answer.status_code == 200
    assert len(answer.content) <= bound
    listed = strict_json(answer.content)
    # A prefix of the whole list; truncated exactly when it is shorter.
    assert listed["nodes"] == whole["nodes"][: len(listed["nodes"])]
    assert listed["truncated"] is (len(listed["nodes"]) < len(whole["nodes"]))
    if listed["truncated"]:
        next_one = json.dumps(whole["nodes"][len(listed["nodes"])]).encode()
        assert len(answer.content) + len(next_one) + 2 > bound


# -- graph_import and graph_export -----------------------------------------------------

# Times with microseconds that a float of Unix seconds holds exactly.
unix_times = st.integers(
    int(datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC).timestamp()) * 10**6,
    int(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC).timestamp()) * 10**6,
).map(lambda micros: micros / 10**6)
relations = st.from_regex(RELATION_PATTERN.replace("$", r"\Z"), fullmatch=True)
node_ids = st.one_of(st.integers(-(2**40), 2**40), storable_text)
NODE_KEYS = ("id", "content", "node_type", "momentum", "created_at", "last_accessed", "metadata")
EDGE_KEYS = ("source_id", "target_id", "relation", "weight", "created_at")


@st.composite
def graph_files(draw: st.DrawFn, max_nodes: int = 6) -> dict[str, Any]:
    """A valid CodeDreamer graph file."""
    ids = draw(st.lists(node_ids, max_size=max_nodes, unique=True))
    nodes = [
        {
            "id": key,
            "content": draw(contents),
            "node_type": draw(node_types),
            "momentum": draw(momenta),
            "created_at": draw(unix_times),
            "last_accessed": draw(unix_times),
            "metadata": draw(metadatas),
        }
        for key in ids
    ]
    pairs = st.tuples(st.sampled_from(ids), st.sampled_from(ids)) if ids else st.nothing()
    max_edges = 8 if ids else 0
    edges = [
        {
            "source_id": source,
            "target_id": target,
            "relation": draw(relations),
            "weight": draw(weights),
            "created_at": draw(unix_times),
        }
        for source, target in draw(st.lists(pairs, unique=True, max_size=max_edges))
    ]
    document: dict[str, Any] = {"nodes": nodes, "edges": edges}
    if draw(st.booleans()):
        document["node_counter"] = len(nodes)
    return document


def comparable(document: dict[str, Any]) -> Any:
    """A file without its ids (nodes in order, edges by their ends' positions),
    its numbers as exact decimals."""
    position = {node["id"]: index for index, node in enumerate(document["nodes"])}
    return decimals(
        {
            "nodes": [{k: v for k, v in node.items() if k != "id"} for node in document["nodes"]],
            "edges": [
                {
                    **edge,
                    "source_id": position[edge["source_id"]],
                    "target_id": position[edge["target_id"]],
                }
                for edge in document["edges"]
            ],
        }
    )


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    written = iter(range(10**9))

    def write(data: bytes) -> Path:
        path = tmp_path / f"graph-{next(written)}.json"
        path.write_bytes(data)
        return path

    return write


def import_file(path: Path) -> None:
    call_command("graph_import", str(path), stdout=StringIO(), stderr=StringIO())


def export() -> dict[str, Any]:
    out = StringIO()
    call_command("graph_export", "-", stdout=out)
    document: dict[str, Any] = strict_json(out.getvalue())
    return document


def clear() -> None:
    Edge.objects.all().delete()
    Node.objects.all().delete()


@settings(max_examples=25)
@given(document=graph_files())
def test_export_then_import_of_any_valid_graph_gives_the_same_graph(
    write_file: WriteFile, document: dict[str, Any]
) -> None:
    clear()
    import_file(write_file(body(document)))
    exported = export()
    assert comparable(exported) == comparable(document)
    clear()
    import_file(write_file(json.dumps(exported, ensure_ascii=False).encode()))
    assert comparable(export()) == comparable(exported)


def assert_import_refused(path: Path, where: str, before: Rows) -> str:
    """graph_import fails, names ``where`` and changes nothing; returns the message."""
    with pytest.raises(CommandError) as raised:
        import_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    assert where in message, message
    assert message.endswith("; nothing was imported."), message
    assert database_rows() == before
    return message


@given(data=not_json.filter(is_not_even_python_json))
def test_import_of_a_file_that_is_not_json_is_refused(
    write_file: WriteFile, seeded: Rows, data: bytes
) -> None:
    assert_import_refused(write_file(data), "not JSON", seeded)


not_graphs = st.one_of(
    not_objects.map(lambda document: (document, "file: ")),
    st.builds(
        lambda key, value: ({"nodes": [], key: value}, f"file.{key}: "),
        st.sampled_from(["nodes", "edges", "node_counter"]),
        st.one_of(st.none(), st.booleans(), storable_text, finite_floats, json_objects),
    ),
    st.builds(
        lambda key: ({"nodes": [], "edges": [], key: 1}, "file: "),
        storable_text.filter(lambda key: key not in ("nodes", "edges", "node_counter")),
    ),
)


@given(case=not_graphs)
def test_import_of_a_file_that_is_not_a_graph_is_refused(
    write_file: WriteFile, seeded: Rows, case: tuple[Any, str]
) -> None:
    document, where = case
    assert_import_refused(write_file(body(document)), where, seeded)


def _fill_slot(value: Any, bad: Any) -> Any:
    if value == SLOT:
        return bad
    if isinstance(value, dict):
        return {key: _fill_slot(item, bad) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill_slot(item, bad) for item in value]
    return value


bad_metadata_values = st.one_of(
    st.sampled_from(["a\x00b", "\ud800", float("nan"), float("inf"), -float("inf")]),
    with_bad_character(),
    with_bad_character().map(lambda key: {key: 1}),
)
BAD_NODE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(st.none(), st.booleans(), st.floats(), json_lists, json_objects),
    "content": st.one_of(WRONG_TYPES["content"], unstorable_contents),
    "node_type": st.one_of(WRONG_TYPES["node_type"], bad_node_types),
    "momentum": st.one_of(WRONG_TYPES["momentum"], st.floats().filter(lambda x: not 0 <= x <= 1)),
    "created_at": st.one_of(
        st.none(),
        st.booleans(),
        storable_text,
        json_lists,
        st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300, -1e300, 10**400]),
    ),
    "last_accessed": st.one_of(st.none(), storable_text, st.sampled_from([float("nan"), 1e20])),
    "metadata": st.one_of(
        WRONG_TYPES["metadata"],
        st.builds(lambda slot, bad: {"k": _fill_slot(slot, bad)}, nested_slot, bad_metadata_values),
    ),
}
BAD_EDGE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "source_id": st.one_of(st.none(), st.booleans(), st.floats(), json_lists),
    "target_id": st.one_of(st.none(), st.floats(), json_objects),
    "relation": st.one_of(
        st.none(),
        json_numbers,
        st.text().filter(lambda name: re.fullmatch(RELATION_PATTERN, name) is None),
        st.sampled_from(["relates_to\n", "Relates", "", "a" * 65, "x-y", "x\x00"]),
    ),
    "weight": st.one_of(
        st.none(),
        st.booleans(),
        storable_text,
        st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, -5e-324]),
        finite_floats.filter(lambda x: not 0 <= x <= 1),
        st.integers(-(10**30), 10**30).filter(lambda x: not 0 <= x <= 1),
    ),
    "created_at": st.one_of(st.none(), storable_text, st.just(float("nan"))),
}


@st.composite
def broken_graph_files(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid graph file with one wrong record, and where the error must point."""
    document = draw(graph_files())
    nodes, edges = document["nodes"], document["edges"]
    if not nodes:
        nodes.extend(draw(graph_files(max_nodes=1).filter(lambda d: bool(d["nodes"])))["nodes"])
    how = draw(
        st.sampled_from(
            [
                "node_field",
                "node_missing",
                "node_unknown",
                "node_not_object",
                "node_id_twice",
                "edge_dangling",
            ]
            + (["edge_field", "edge_missing", "edge_unknown", "edge_twice"] if edges else [])
        )
    )
    index = draw(st.integers(0, len(nodes) - 1))
    node = nodes[index]
    at = draw(st.integers(0, len(edges) - 1)) if edges else 0
    if how == "node_field":
        field = draw(st.sampled_from(sorted(BAD_NODE_FIELDS)))
        node[field] = draw(BAD_NODE_FIELDS[field])
        # A problem inside the metadata is named by its keys: nodes[0].metadata['k'][2]
        return document, f"nodes[{index}].{field}" + ("" if field == "metadata" else ": ")
    if how == "node_missing":
        field = draw(st.sampled_from([key for key in NODE_KEYS if key != "metadata"]))
        del node[field]
        return document, f"nodes[{index}].{field}: "
    if how == "node_unknown":
        name = draw(st.one_of(storable_text, lone_surrogates).filter(lambda k: k not in node))
        node[name] = draw(json_scalars)
        return document, f"nodes[{index}]: "
    if how == "node_not_object":
        nodes[index] = draw(st.one_of(json_scalars, json_lists))
        return document, f"nodes[{index}]: "
    if how == "node_id_twice":
        nodes.insert(index + 1, {**node, "content": "again"})
        return document, f"nodes[{index + 1}].id: "
    if how == "edge_dangling":
        end = draw(st.sampled_from(["source_id", "target_id"]))
        missing = draw(node_ids.filter(lambda key: key not in {n["id"] for n in nodes}))
        dangling = {"source_id": node["id"], "target_id": node["id"], end: missing}
        edges.append({"relation": "x", "weight": 1, "created_at": 0, **dangling})
        return document, f"edges[{len(edges) - 1}].{end}: "
    edge = edges[at]
    if how == "edge_field":
        field = draw(st.sampled_from(sorted(BAD_EDGE_FIELDS)))
        edge[field] = draw(BAD_EDGE_FIELDS[field])
        return document, f"edges[{at}].{field}: "
    if how == "edge_missing":
        field = draw(st.sampled_from(EDGE_KEYS))
        del edge[field]
        return document, f"edges[{at}].{field}: "
    if how == "edge_unknown":
        name = draw(storable_text.filter(lambda k: k not in edge))
        edge[name] = draw(json_scalars)
        return document, f"edges[{at}]: "
    edges.append({**edge, "relation": "again"})  # the same pair a second time
    return document, f"edges[{len(edges) - 1}]: "


@settings(max_examples=80)
@given(case=broken_graph_files())
def test_import_of_a_file_with_a_bad_record_names_it_and_changes_nothing(
    write_file: WriteFile, seeded: Rows, case: tuple[dict[str, Any], str]
) -> None:
    document, where = case
    # Written as CodeDreamer's Python writes it: NaN and Infinity as literals.
    assert_import_refused(write_file(body(document)), where, seeded)


ADDED = {
    "id": "added",
    "content": "c",
    "node_type": "FACT",
    "momentum": 0.5,
    "created_at": 0,
    "last_accessed": 0,
}
graphs_without_added = graph_files().filter(
    lambda document: all(node["id"] != "added" for node in document["nodes"])
)


@given(
    document=graphs_without_added,
    literal=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]),
    field=st.sampled_from(["momentum", "created_at", "last_accessed"]),
)
def test_import_names_the_record_with_a_number_that_is_not_finite(
    write_file: WriteFile, seeded: Rows, document: dict[str, Any], literal: str, field: str
) -> None:
    document["nodes"].append({**ADDED, field: SLOT})
    where = f"nodes[{len(document['nodes']) - 1}].{field}: "
    message = assert_import_refused(write_file(with_raw(document, literal)), where, seeded)
    assert "finite" in message


@given(document=graphs_without_added, field=st.sampled_from(["id", "content", "momentum"]))
def test_import_names_the_record_with_a_field_given_twice(
    write_file: WriteFile, seeded: Rows, document: dict[str, Any], field: str
) -> None:
    document["nodes"].append({**ADDED, "metadata": SLOT})
    raw = f"{{}}, {json.dumps(field)}: 1"  # metadata {}, then the field a second time
    where = f"nodes[{len(document['nodes']) - 1}]: "
    message = assert_import_refused(write_file(with_raw(document, raw)), where, seeded)
    assert repr(field) in message


@given(
    document=graph_files(), metadata=st.lists(sized_metadatas, max_size=6), limit=metadata_limits
)
def test_import_names_the_first_node_over_max_metadata_bytes_or_imports_all(
    write_file: WriteFile, seeded: Rows, document: dict[str, Any], metadata: list[Any], limit: int
) -> None:
    for record, value in zip(document["nodes"], metadata, strict=False):
        record["metadata"] = value
    over = [
        i for i, record in enumerate(document["nodes"]) if metadata_size(record["metadata"]) > limit
    ]
    path = write_file(body(document))
    with override_settings(GRAPHAPP={"MAX_METADATA_BYTES": limit}):
        if over:
            message = assert_import_refused(path, f"nodes[{over[0]}].metadata: ", seeded)
            assert "MAX_METADATA_BYTES" in message
        else:
            import_file(path)
            added = Node.objects.exclude(pk__in=[row[0] for row in seeded[0]])
            assert added.count() == len(document["nodes"])
            added.delete()  # the seeded rows stay as they are for the next example


@settings(max_examples=3)
@given(piece=non_blank)
def test_import_of_megabytes_of_content_names_the_record(
    write_file: WriteFile, seeded: Rows, piece: str
) -> None:
    node = {**ADDED, "content": fill(piece, 3_000_000)}
    # Up to 36 MB (escaped): over the default file limit, which must not be what refuses it.
    with override_settings(GRAPHAPP={"MAX_IMPORT_BYTES": 64 * 1024 * 1024}):
        assert_import_refused(write_file(body({"nodes": [node]})), "nodes[0].content: ", seeded)


# -- The same refusals through a real server -------------------------------------------


@pytest.mark.e2e
async def test_daphne_refuses_oversized_and_unstorable_bodies_with_json_errors(
    live_server_default: LiveServer,
) -> None:
    limit: int = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    node = {"content": "x" * (limit + 1), "node_type": "FACT"}

    async def chunked() -> AsyncIterator[bytes]:
        # No Content-Length: Django must measure what it buffered.
        yield body(node)

    async with logged_in(live_server_default, "editor") as editor:
        before = (await editor.get("/graph/api/stats/")).json()["nodes"]
        headers = {**csrf_headers(editor, live_server_default), "Content-Type": "application/json"}
        for content in (body(node), chunked()):
            answer = await editor.post(NODES, content=content, headers=headers)
            assert answer.status_code == 413, answer.text[:300]
            assert f"{limit:,}" in answer.json()["error"]
        for bad in ("a\x00b", "a\ud800b"):
            answer = await editor.post(
                NODES, content=body({"content": bad, "node_type": "FACT"}), headers=headers
            )
            assert answer.status_code == 400, answer.text[:300]
            assert set(answer.json()["errors"]) == {"content"}
        assert (await editor.get("/graph/api/stats/")).json()["nodes"] == before
