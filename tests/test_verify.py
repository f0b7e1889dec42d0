"""The rule behind convergence: what a hub's look at the database tells it to do."""

from graphapp.verify import Verdict, Verifier


def test_a_hub_that_has_the_databases_version_is_confirmed() -> None:
    assert Verifier().observe(database=7, streams=7) is Verdict.CONFIRMED


def test_a_version_ahead_gets_one_interval_to_arrive_through_the_layer() -> None:
    verifier = Verifier()
    assert verifier.observe(database=8, streams=7) is Verdict.WAIT
    # It arrived meanwhile (and more was written since): the layer works.
    assert verifier.observe(database=9, streams=8) is Verdict.WAIT
    assert verifier.observe(database=9, streams=9) is Verdict.CONFIRMED


def test_a_version_that_did_not_arrive_by_the_next_look_is_computed_here() -> None:
    verifier = Verifier()
    assert verifier.observe(database=8, streams=7) is Verdict.WAIT
    assert verifier.observe(database=8, streams=7) is Verdict.REFRESH
    # The refresh brought it: nothing left to wait for.
    assert verifier.observe(database=8, streams=8) is Verdict.CONFIRMED


def test_writes_that_keep_coming_faster_than_the_layer_are_computed_here() -> None:
    verifier = Verifier()
    assert verifier.observe(database=8, streams=7) is Verdict.WAIT
    # The layer brought nothing at all while the writes went on.
    assert verifier.observe(database=20, streams=7) is Verdict.REFRESH


def test_a_database_whose_version_went_back_is_followed() -> None:
    assert Verifier().observe(database=3, streams=7) is Verdict.REFRESH


def test_a_hub_with_nothing_yet_computes_at_once() -> None:
    assert Verifier().observe(database=3, streams=-1) is Verdict.REFRESH


def test_a_database_that_keeps_no_version_is_recomputed_at_every_look() -> None:
    verifier = Verifier()
    assert verifier.observe(database=None, streams=7) is Verdict.REFRESH
    assert verifier.observe(database=None, streams=7) is Verdict.REFRESH


def test_a_refresh_that_failed_is_tried_again_at_the_next_look() -> None:
    verifier = Verifier()
    assert verifier.observe(database=8, streams=7) is Verdict.WAIT
    assert verifier.observe(database=8, streams=7) is Verdict.REFRESH
    # The statistics could not be computed: no second interval of waiting.
    assert verifier.observe(database=8, streams=7) is Verdict.REFRESH
