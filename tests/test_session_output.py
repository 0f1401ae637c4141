"""The session API's prebuilt output gives exactly DRF's own representation, in every state a session reaches."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from sessions.models import VoiceSession
from sessions.selectors import session_visible_to
from sessions.serializers import SessionDetailOutput, SessionOutput, session_detail_output, session_output
from sessions.services import lifecycle

pytestmark = pytest.mark.django_db

CONVERSATION = {
    "conversation_id": "conv_out_1",
    "status": "done",
    "transcript": [{"role": "agent", "message": "Hello", "time_in_call_secs": 0}],
    "metadata": {"call_duration_secs": 42, "cost": 317, "termination_reason": "end_call tool", "main_language": "de"},
    "analysis": {
        "call_successful": "success",
        "transcript_summary": "Asked about a refund.",
        "call_summary_title": "R",
    },
}


def sessions_in_every_state(owner) -> list[VoiceSession]:
    created = lifecycle.session_create(
        user=owner, customer_id="cust-new", dynamic_variables={"plan": "gold", "n": 3, "vip": True}, simulation=True
    )
    ownerless = lifecycle.session_create(customer_id="cust-nobody", direction="outbound", phone_number="+14155550100")
    failed = lifecycle.session_create(user=owner, customer_id="cust-failed")
    lifecycle.session_fail(session=failed, code="upstream_error", message="ElevenLabs said 502", upstream_status=502)
    finished = lifecycle.session_create(user=owner, customer_id="cust-done", locale="pt-BR", agent_type="sales")
    lifecycle.session_mark_connecting(
        session=finished, agent_id="agent_x", connection_type="websocket", simulation=True
    )
    lifecycle.session_activate(session=finished, conversation_id="conv_out_1")
    lifecycle.session_store_post_call(session=finished, conversation=CONVERSATION, source="webhook")
    lifecycle.session_store_audio(
        session=finished, content=ContentFile(b"ID3 audio"), filename="conv_out_1.mp3", size=9
    )
    return [created, ownerless, failed, finished]


def test_every_state_is_represented_as_drf_represents_it(alice, charlie_staff, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    for session in sessions_in_every_state(alice):
        from_database = VoiceSession.objects.select_related("created_by").get(pk=session.pk)
        assert session_output(from_database) == SessionOutput(from_database).data
        assert session_detail_output(from_database) == SessionDetailOutput(from_database).data
        # As the API reads it: the owner's name and the timeline come with the row.
        read = session_visible_to(charlie_staff, session.pk, with_timeline=True)
        assert session_detail_output(read) == SessionDetailOutput(from_database).data


def test_the_states_differ_where_they_should(alice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    created, ownerless, failed, finished = (
        session_output(VoiceSession.objects.get(pk=s.pk)) for s in sessions_in_every_state(alice)
    )
    assert created["created_by"] == "alice" and ownerless["created_by"] is None
    assert failed["upstream_status"] == 502 and failed["status"] == "failed"
    assert finished["cost"] == 317 and finished["call_successful"] == "success"
    assert finished["audio_url"] == f"/voice/sessions/{finished['session_id']}/audio" and created["audio_url"] is None
    assert created["dynamic_variables"] == {"plan": "gold", "n": 3, "vip": True}
