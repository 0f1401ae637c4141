"""The operators' admin for sessions."""

from __future__ import annotations

import pytest

from sessions.models import VoiceSession
from sessions.services import lifecycle

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(alice):
    session = lifecycle.session_create(user=alice, customer_id="cust-admin", agent_type="sales")
    lifecycle.session_mark_connecting(session=session, agent_id="agent_x", connection_type="websocket", simulation=True)
    lifecycle.session_activate(session=session, conversation_id="conv_admin_1")
    conversation = {
        "transcript": [
            {"role": "agent", "message": "Hi, this is sales <b>", "time_in_call_secs": 0},
            {"role": "user", "message": "Tell me the price", "time_in_call_secs": 3},
        ],
        "analysis": {"call_successful": "success", "transcript_summary": "Asked about price."},
        "metadata": {"call_duration_secs": 12, "termination_reason": "client disconnected"},
    }
    return lifecycle.session_store_post_call(session=session, conversation=conversation, source="webhook")


def test_the_list_filters_and_searches(operator, finished, alice):
    other = lifecycle.session_create(user=alice, customer_id="someone-else")
    page = operator.get("/admin/voice_sessions/voicesession/")
    assert page.status_code == 200
    for text in ("status", "agent type", "direction", "simulation"):
        assert f"By {text}" in page.text
    found = operator.get("/admin/voice_sessions/voicesession/", {"q": "cust-admin"})
    assert str(finished.pk) in found.text and str(other.pk) not in found.text
    by_conversation = operator.get("/admin/voice_sessions/voicesession/", {"q": "conv_admin_1"})
    assert str(finished.pk) in by_conversation.text
    by_id = operator.get("/admin/voice_sessions/voicesession/", {"q": str(other.pk)})
    assert str(other.pk) in by_id.text and str(finished.pk) not in by_id.text
    filtered = operator.get("/admin/voice_sessions/voicesession/", {"status__exact": "ended"})
    assert str(finished.pk) in filtered.text and str(other.pk) not in filtered.text


def test_the_list_shows_when_how_long_how_it_went_and_what_it_cost(operator, finished, alice):
    VoiceSession.objects.filter(pk=finished.pk).update(cost=412, call_duration_secs=95)
    unfinished = lifecycle.session_create(user=alice, customer_id="cust-open")
    page = operator.get("/admin/voice_sessions/voicesession/")
    for header in ("Created at", "Duration", "Outcome", "Cost"):
        assert f">{header}<" in page.text, header
    assert '<td class="field-duration">1:35</td>' in page.text
    assert '<td class="field-call_successful">Success</td>' in page.text
    assert '<td class="field-cost">412</td>' in page.text
    assert '<td class="field-duration">-</td>' in page.text  # no post-call data yet
    for text in ("outcome", "agent type"):
        assert f"By {text}" in page.text
    assert 'id="date-hierarchy-label"' in page.text  # the date hierarchy's bar

    by_outcome = operator.get("/admin/voice_sessions/voicesession/", {"call_successful__exact": "success"})
    assert str(finished.pk) in by_outcome.text and str(unfinished.pk) not in by_outcome.text
    by_agent = operator.get("/admin/voice_sessions/voicesession/", {"agent_type__exact": "support"})
    assert str(unfinished.pk) in by_agent.text and str(finished.pk) not in by_agent.text
    created = finished.created_at
    by_day = operator.get(
        "/admin/voice_sessions/voicesession/",
        {"created_at__year": created.year, "created_at__month": created.month, "created_at__day": created.day},
    )
    assert str(finished.pk) in by_day.text
    by_duration = operator.get("/admin/voice_sessions/voicesession/", {"o": "7"})  # sorted by duration
    assert by_duration.status_code == 200


def test_the_change_page_shows_timeline_and_readable_post_call_data(operator, finished):
    page = operator.get(f"/admin/voice_sessions/voicesession/{finished.pk}/change/")
    assert page.status_code == 200
    assert "Tell me the price" in page.text
    assert "Hi, this is sales &lt;b&gt;" in page.text  # escaped, not rendered
    assert "Asked about price." in page.text
    for kind in ("created", "connecting", "active", "post_call", "ended"):
        assert f">{kind}<" in page.text


def test_the_end_action_goes_through_the_service(operator, alice):
    open_session = lifecycle.session_create(user=alice, customer_id="c-open")
    ended = lifecycle.session_create(user=alice, customer_id="c-ended")
    lifecycle.session_end(session=ended)
    response = operator.post(
        "/admin/voice_sessions/voicesession/",
        {"action": "end_selected", "_selected_action": [str(open_session.pk), str(ended.pk)]},
        follow=True,
    )
    assert "Ended 1 session(s)" in response.text
    open_session.refresh_from_db()
    assert open_session.status == "ended"
    assert open_session.end_reason == "operator"
    assert open_session.events.filter(kind="ended").count() == 1
    assert ended.events.filter(kind="ended").count() == 1


def test_operators_cannot_add_or_edit_records(operator, finished):
    assert operator.get("/admin/voice_sessions/voicesession/add/").status_code == 403
    operator.post(f"/admin/voice_sessions/voicesession/{finished.pk}/change/", {"status": "created"})
    assert VoiceSession.objects.get(pk=finished.pk).status == "ended"


def test_no_secret_appears_in_the_admin(operator, finished, settings):
    page = operator.get(f"/admin/voice_sessions/voicesession/{finished.pk}/change/")
    assert settings.ELEVENLABS_API_KEY not in page.text
    assert settings.ELEVENLABS_WEBHOOK_SECRET not in page.text


def test_api_token_keys_are_shown_once_on_creation_and_masked_in_the_list(operator, alice):
    from rest_framework.authtoken.models import Token

    created = operator.post("/admin/voice_sessions/apitoken/add/", {"user": alice.pk}, follow=True)
    token = Token.objects.get(user=alice)
    assert f"API token for alice: {token.key}" in created.text
    listing = operator.get("/admin/voice_sessions/apitoken/")
    assert token.key not in listing.text
    assert f"{token.key[:4]}…" in listing.text
    assert token.key not in operator.get(f"/admin/voice_sessions/apitoken/{alice.pk}/change/").text
