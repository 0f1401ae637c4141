"""A session's creation is no longer a stored timeline row: sessions.selectors.creation_event reads it
from the session's own columns. The rows stored before would show twice; they go. Going back writes
them again from the same columns, in batches."""

from django.db import migrations

CREATED = "created"
BATCH = 2000


def forget_creation_rows(apps, schema_editor):
    SessionEvent = apps.get_model("voice_sessions", "SessionEvent")
    SessionEvent.objects.filter(kind=CREATED).delete()


def store_creation_rows(apps, schema_editor):
    VoiceSession = apps.get_model("voice_sessions", "VoiceSession")
    SessionEvent = apps.get_model("voice_sessions", "SessionEvent")
    # The rows carry their sessions' creation times, which auto_now_add would replace with now.
    stamped = SessionEvent._meta.get_field("created_at")
    stamped.auto_now_add = False
    try:
        sessions = VoiceSession.objects.only("id", "created_at", "agent_type", "direction", "simulation")
        batch = []
        for session in sessions.order_by("pk").iterator(chunk_size=BATCH):
            batch.append(creation_row(SessionEvent, session))
            if len(batch) >= BATCH:
                SessionEvent.objects.bulk_create(batch)
                batch = []
        SessionEvent.objects.bulk_create(batch)
    finally:
        stamped.auto_now_add = True


def creation_row(SessionEvent, session):  # noqa: N803 - the migration's model class
    payload = {"agent_type": session.agent_type, "direction": session.direction, "simulation": session.simulation}
    return SessionEvent(
        session_id=session.pk,
        kind=CREATED,
        from_status="",
        to_status=CREATED,
        payload=payload,
        created_at=session.created_at,
    )


class Migration(migrations.Migration):
    dependencies = [("voice_sessions", "0007_analytics_indexes")]

    operations = [migrations.RunPython(forget_creation_rows, store_creation_rows)]
