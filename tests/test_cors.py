"""graphapp.cors in-process: which answers carry CORS headers, and which do not."""

from __future__ import annotations

import pytest
from django.test import AsyncClient, override_settings

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "https://app.example.com"


async def test_without_origins_no_answer_carries_cors_headers_or_varies_on_origin() -> None:
    answer = await AsyncClient().get("/graph/api/stats/", headers={"Origin": ORIGIN})

    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer
    assert "Origin" not in answer.get("Vary", "")


@override_settings(GRAPHAPP={"CORS_ORIGINS": [ORIGIN]})
async def test_a_refusal_to_a_listed_origin_is_readable_by_its_page() -> None:
    # The page must be able to read why (a 403 in JSON), not a CORS failure.
    answer = await AsyncClient().get("/graph/events/", headers={"Origin": ORIGIN})

    assert answer.status_code == 403
    assert answer["Access-Control-Allow-Origin"] == ORIGIN
    assert answer["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in answer["Vary"]


@override_settings(GRAPHAPP={"CORS_ORIGINS": [ORIGIN]})
@pytest.mark.parametrize(
    "origin", ["https://app.example.com:8443", "http://app.example.com", "null"]
)
async def test_an_origin_is_listed_only_by_its_scheme_host_and_port(origin: str) -> None:
    answer = await AsyncClient().options(
        "/graph/events/", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
    )

    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer


@override_settings(GRAPHAPP={"CORS_ORIGINS": [ORIGIN]})
async def test_an_options_request_that_is_no_preflight_reaches_the_view() -> None:
    answer = await AsyncClient().options("/graph/events/", headers={"Origin": ORIGIN})

    assert answer.status_code == 405
    assert answer["Access-Control-Allow-Origin"] == ORIGIN
