"""`GET /voice/sessions` filters on the post-call facts: outcome, duration, agent and a search.

Alice sees only her sessions whatever the filter; staff (charlie) see everyone's.
"""

from __future__ import annotations

import pytest

from sessions.models import VoiceSession

pytestmark = pytest.mark.django_db


def stored(user, customer_id: str, **facts) -> VoiceSession:
    return VoiceSession.objects.create(created_by=user, customer_id=customer_id, **facts)


@pytest.fixture
def calls(alice, bob):
    """Alice's four calls and Bob's two, each with different facts."""
    return {
        "a_won": stored(
            alice,
            "acme-1",
            agent_type="sales",
            status="ended",
            call_successful="success",
            call_duration_secs=120,
            conversation_id="conv_alpha_1",
            summary_title="Discount for the team plan",
            transcript_summary="The customer asked about pricing.",
        ),
        "a_lost": stored(
            alice,
            "acme-2",
            agent_type="support",
            status="ended",
            call_successful="failure",
            call_duration_secs=30,
            conversation_id="conv_beta_2",
            summary_title="Router still blinking",
            transcript_summary="The router kept blinking after a RESET.",
        ),
        "a_unsure": stored(
            alice, "globex-3", status="ended", call_successful="unknown", call_duration_secs=60, conversation_id="c3"
        ),
        "a_open": stored(alice, "globex-4", status="active"),
        "b_won": stored(
            bob,
            "initech-5",
            agent_type="sales",
            status="ended",
            call_successful="success",
            call_duration_secs=300,
            summary_title="Router upgrade sold",
        ),
        "b_lost": stored(bob, "initech-6", status="ended", call_successful="failure", call_duration_secs=10),
    }


ALL_DURATIONS = {"acme-1", "acme-2", "globex-3", "initech-5", "initech-6"}


def listed(client, query: str) -> set[str]:
    response = client.get(f"/voice/sessions?{query}")
    assert response.status_code == 200, response.content
    return {row["customer_id"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("query", "alice_sees", "staff_sees"),
    [
        ("call_successful=success", {"acme-1"}, {"acme-1", "initech-5"}),
        ("call_successful=failure", {"acme-2"}, {"acme-2", "initech-6"}),
        ("call_successful=unknown", {"globex-3"}, {"globex-3"}),
        ("min_duration=60", {"acme-1", "globex-3"}, {"acme-1", "globex-3", "initech-5"}),
        ("max_duration=60", {"acme-2", "globex-3"}, {"acme-2", "globex-3", "initech-6"}),
        ("min_duration=30&max_duration=60", {"acme-2", "globex-3"}, {"acme-2", "globex-3"}),
        ("min_duration=0", {"acme-1", "acme-2", "globex-3"}, ALL_DURATIONS),
        ("agent_type=sales", {"acme-1"}, {"acme-1", "initech-5"}),
        ("agent_type=support&call_successful=failure", {"acme-2"}, {"acme-2", "initech-6"}),
        # search: the customer id, the conversation id, the summary title and the summary, in any case
        ("search=GLOBEX", {"globex-3", "globex-4"}, {"globex-3", "globex-4"}),
        ("search=conv_beta", {"acme-2"}, {"acme-2"}),
        ("search=router", {"acme-2"}, {"acme-2", "initech-5"}),
        ("search=reset", {"acme-2"}, {"acme-2"}),
        ("search=pricing", {"acme-1"}, {"acme-1"}),
        ("search=%20%20", {"acme-1", "acme-2", "globex-3", "globex-4"}, None),  # blank: no filter
        ("search=50%25", set(), set()),  # a LIKE wildcard is a character like any other
        ("search=nobody", set(), set()),
    ],
)
def test_each_filter_as_the_owner_and_as_staff(calls, alice_api, staff_api, query, alice_sees, staff_sees):
    assert listed(alice_api, query) == alice_sees
    if staff_sees is not None:
        assert listed(staff_api, query) == staff_sees


def test_bob_never_sees_alices_calls_through_a_search(calls, bob_api):
    assert listed(bob_api, "search=acme") == set()
    assert listed(bob_api, "search=router") == {"initech-5"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("call_successful=maybe", "call_successful"),
        ("call_successful=", None),  # empty: no filter
        ("min_duration=soon", "min_duration"),
        ("min_duration=1.5", "min_duration"),
        ("min_duration=-1", "min_duration"),
        ("max_duration=99999999999999999999", "max_duration"),
        ("min_duration=61&max_duration=60", "max_duration"),
        ("agent_type=billing", "agent_type"),
        ("search=" + "x" * 201, "search"),
        ("search=a%00b", "search"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(calls, alice_api, query, field):
    response = alice_api.get(f"/voice/sessions?{query}")
    if field is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert field in error["message"]


def test_the_filters_are_in_the_openapi_schema(alice_api):
    schema = alice_api.get("/api/schema/?format=json").json()
    names = {parameter["name"] for parameter in schema["paths"]["/voice/sessions"]["get"]["parameters"]}
    assert {"call_successful", "min_duration", "max_duration", "agent_type", "search"} <= names
