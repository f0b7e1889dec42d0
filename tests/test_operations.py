"""graphapp.operations: decay, activate, prune, prune_below, and the model's constraints.

Decay: momentum falls by 0.05 per hour, floored at 0.01 (a node already below the
floor is not raised), and the same hours are never counted twice. Activation
settles pending decay, adds 0.3 (capped at 1.0) and sets last_accessed.
"""

import datetime

import pytest
from django.db import IntegrityError, transaction

from graphapp import operations
from graphapp.models import Edge, Node, NodeType
from tests.factories import T0
from tests.factories import node_at as node

pytestmark = pytest.mark.django_db

HOUR = datetime.timedelta(hours=1)


def fresh(obj: Node) -> Node:
    return Node.objects.get(pk=obj.pk)


# -- decay ------------------------------------------------------------------


def test_decay_hours_lowers_momentum_by_five_hundredths_an_hour():
    n = node(momentum=1.0)

    assert operations.decay(hours=2) == 1

    # 1.0 - 0.05 * 2 = 0.9
    assert fresh(n).momentum == pytest.approx(0.9)


def test_decay_hours_moves_the_decay_clock_forward_by_as_much():
    n = node(momentum=1.0)

    operations.decay(hours=2.5)

    assert fresh(n).decayed_at == T0 + 2.5 * HOUR


def test_decay_stops_at_the_floor():
    n = node(momentum=0.1)

    operations.decay(hours=10)

    # 0.1 - 0.05 * 10 = -0.4, floored to 0.01
    assert fresh(n).momentum == pytest.approx(0.01)


def test_decay_does_not_raise_a_node_already_below_the_floor():
    low = node(momentum=0.005)
    zero = node(momentum=0.0)

    operations.decay(hours=1)
    operations.decay(now=T0 + 5 * HOUR)

    assert fresh(low).momentum == pytest.approx(0.005)
    assert fresh(zero).momentum == 0.0


def test_decay_by_elapsed_time_counts_each_hour_once():
    n = node(momentum=1.0)

    operations.decay(now=T0 + 3 * HOUR)
    # 3 hours: 1.0 - 0.15 = 0.85
    assert fresh(n).momentum == pytest.approx(0.85)
    assert fresh(n).decayed_at == T0 + 3 * HOUR

    operations.decay(now=T0 + 5 * HOUR)
    # Only the 2 new hours: 0.85 - 0.10 = 0.75 (measuring from T0 again, as
    # CodeDreamer's decay_all does, would give 0.85 - 0.25 = 0.6).
    assert fresh(n).momentum == pytest.approx(0.75)
    assert fresh(n).decayed_at == T0 + 5 * HOUR


def test_decay_twice_at_the_same_moment_changes_nothing_the_second_time():
    n = node(momentum=1.0)

    operations.decay(now=T0 + 4 * HOUR)
    operations.decay(now=T0 + 4 * HOUR)

    # 1.0 - 0.05 * 4 = 0.8, once
    assert fresh(n).momentum == pytest.approx(0.8)


def test_decay_hours_are_not_counted_again_by_a_later_elapsed_decay():
    n = node(momentum=1.0)

    operations.decay(hours=2)  # 1.0 - 0.10 = 0.9, clock at T0 + 2 h
    operations.decay(now=T0 + 5 * HOUR)  # 3 more hours: 0.9 - 0.15 = 0.75

    # Counting the 2 hours again would give 0.9 - 0.25 = 0.65.
    assert fresh(n).momentum == pytest.approx(0.75)
    assert fresh(n).decayed_at == T0 + 5 * HOUR


def test_decay_with_now_before_the_clock_changes_nothing():
    n = node(momentum=0.6, at=T0)

    operations.decay(now=T0 - 3 * HOUR)

    n = fresh(n)
    assert n.momentum == pytest.approx(0.6)
    assert n.decayed_at == T0  # not moved backwards


def test_decay_measures_each_node_from_its_own_clock():
    old = node(momentum=1.0, at=T0)
    new = node(momentum=1.0, at=T0 + 4 * HOUR)

    operations.decay(now=T0 + 6 * HOUR)

    assert fresh(old).momentum == pytest.approx(0.7)  # 6 hours: 1.0 - 0.30
    assert fresh(new).momentum == pytest.approx(0.9)  # 2 hours: 1.0 - 0.10


def test_decay_only_touches_the_given_nodes():
    chosen = node(momentum=1.0)
    other = node(momentum=1.0)

    count = operations.decay(Node.objects.filter(pk=chosen.pk), hours=1)

    assert count == 1
    assert fresh(chosen).momentum == pytest.approx(0.95)
    assert fresh(other).momentum == 1.0
    assert fresh(other).decayed_at == T0


def test_decay_rejects_negative_hours():
    n = node(momentum=0.5)

    with pytest.raises(ValueError, match="hours"):
        operations.decay(hours=-1)

    assert fresh(n).momentum == 0.5


# -- activate ---------------------------------------------------------------


def test_activate_settles_pending_decay_then_adds_three_tenths():
    n = node(momentum=0.5)

    assert operations.activate(Node.objects.filter(pk=n.pk), now=T0 + 2 * HOUR) == 1

    n = fresh(n)
    # 2 hours of decay first: 0.5 - 0.10 = 0.4; then + 0.3 = 0.7
    assert n.momentum == pytest.approx(0.7)
    assert n.last_accessed == T0 + 2 * HOUR
    assert n.decayed_at == T0 + 2 * HOUR


def test_activate_then_decay_does_not_count_the_settled_hours_again():
    n = node(momentum=0.5)

    operations.activate(Node.objects.filter(pk=n.pk), now=T0 + 2 * HOUR)  # 0.7
    operations.decay(now=T0 + 3 * HOUR)  # one new hour: 0.7 - 0.05 = 0.65

    assert fresh(n).momentum == pytest.approx(0.65)


def test_activate_caps_at_one():
    n = node(momentum=0.9)

    operations.activate(Node.objects.filter(pk=n.pk), now=T0)

    # 0.9 + 0.3 = 1.2, capped to 1.0
    assert fresh(n).momentum == 1.0


def test_activate_caps_at_one_after_decay():
    n = node(momentum=0.95)

    operations.activate(Node.objects.filter(pk=n.pk), now=T0 + HOUR)

    # 0.95 - 0.05 = 0.9; 0.9 + 0.3 = 1.2, capped to 1.0
    assert fresh(n).momentum == 1.0


def test_activate_lifts_a_node_below_the_floor_from_where_it_is():
    n = node(momentum=0.005)

    operations.activate(Node.objects.filter(pk=n.pk), now=T0 + 10 * HOUR)

    # Decay does not raise it to 0.01 first: 0.005 + 0.3 = 0.305
    assert fresh(n).momentum == pytest.approx(0.305)


def test_activate_leaves_other_nodes_alone():
    chosen = node(momentum=0.2)
    other = node(momentum=0.2)

    operations.activate(Node.objects.filter(pk=chosen.pk), now=T0 + HOUR)

    other = fresh(other)
    assert fresh(chosen).momentum == pytest.approx(0.45)  # 0.2 - 0.05 + 0.3
    assert other.momentum == pytest.approx(0.2)
    assert other.last_accessed == T0
    assert other.decayed_at == T0


# -- prune ------------------------------------------------------------------


def test_prune_deletes_nodes_and_their_edges_in_both_directions():
    a, b, c, d = node(), node(), node(), node()
    Edge.objects.create(source=a, target=b)  # out of a: goes
    Edge.objects.create(source=c, target=a)  # into a: goes
    kept_1 = Edge.objects.create(source=b, target=c)
    kept_2 = Edge.objects.create(source=c, target=d)

    assert operations.prune(Node.objects.filter(pk=a.pk)) == 1

    assert set(Node.objects.values_list("pk", flat=True)) == {b.pk, c.pk, d.pk}
    assert set(Edge.objects.values_list("pk", flat=True)) == {kept_1.pk, kept_2.pk}


@pytest.mark.parametrize(
    "select",
    [Node.objects.none, lambda: Node.objects.filter(pk__in=[]), lambda: Node.objects.filter(pk=0)],
    ids=["none", "pk-in-empty-list", "no-match"],
)
def test_prune_of_an_empty_selection_deletes_nothing_and_returns_zero(select):
    a, b = node(), node()
    Edge.objects.create(source=a, target=b)

    assert operations.prune(select()) == 0

    assert Node.objects.count() == 2
    assert Edge.objects.count() == 1


def test_prune_below_deletes_strictly_below_the_threshold():
    low = node(momentum=0.39)
    at_threshold = node(momentum=0.4)
    high = node(momentum=0.9)
    Edge.objects.create(source=high, target=low)
    kept = Edge.objects.create(source=high, target=at_threshold)

    assert operations.prune_below(0.4) == 1

    assert set(Node.objects.values_list("pk", flat=True)) == {at_threshold.pk, high.pk}
    assert list(Edge.objects.values_list("pk", flat=True)) == [kept.pk]


# -- constraints ------------------------------------------------------------


@pytest.mark.parametrize("momentum", [-0.01, 1.01, 2.0])
def test_node_momentum_outside_zero_one_is_rejected_by_the_database(momentum):
    n = Node(content="n", node_type=NodeType.FACT, momentum=momentum)

    # save() does not run validators: the check constraint must catch it.
    with pytest.raises(IntegrityError), transaction.atomic():
        n.save()

    assert not Node.objects.exists()


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_node_momentum_bounds_are_accepted(momentum):
    Node(content="n", node_type=NodeType.FACT, momentum=momentum).save()

    assert Node.objects.get().momentum == momentum


def test_edge_one_per_source_target_pair():
    a, b = node(), node()
    Edge.objects.create(source=a, target=b, relation="relates_to")

    with pytest.raises(IntegrityError), transaction.atomic():
        Edge.objects.create(source=a, target=b, relation="depends_on")

    # The opposite direction is another pair.
    Edge.objects.create(source=b, target=a)
    assert Edge.objects.count() == 2
