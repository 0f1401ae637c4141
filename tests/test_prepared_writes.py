"""A prepared INSERT writes exactly the row ``save()`` writes, on SQLite and PostgreSQL, and fails as it does."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Now
from django.db.models.signals import post_save, pre_save
from django.test.utils import isolate_apps

from sessions.models import AgentType, SessionEvent, VoiceSession
from voiceagent.prepared_writes import PreparedInsert

pytestmark = pytest.mark.django_db

insert_session = PreparedInsert(VoiceSession)
insert_event = PreparedInsert(SessionEvent)


def stored(model, pk) -> dict:
    """The row as the database holds it, read back through the ORM."""
    instance = model.objects.get(pk=pk)
    return {field.attname: getattr(instance, field.attname) for field in model._meta.concrete_fields}


def new_session(**overrides) -> VoiceSession:
    values = {
        "customer_id": "cust-prepared",
        "agent_type": "sales",
        "direction": "outbound",
        "locale": "de-DE",
        "simulation": True,
        "phone_number": "+4915112345678",
        "dynamic_variables": {"plan": "gold", "n": 3, "vip": True, "nested": {"ok": [1, 2]}},
        "idempotency_key": None,
    }
    return VoiceSession(**{**values, **overrides})


def test_a_session_row_is_the_row_save_writes(alice):
    prepared = insert_session(new_session(created_by=alice, customer_id="cust-a"))
    saved = new_session(created_by=alice, customer_id="cust-b")
    saved.save()

    ours, theirs = stored(VoiceSession, prepared.pk), stored(VoiceSession, saved.pk)
    for differs in ("id", "customer_id", "created_at", "updated_at"):
        assert ours.pop(differs) != theirs.pop(differs)
    assert ours == theirs
    # auto_now_add and auto_now were filled in on the instance, as save() fills them.
    assert prepared.created_at is not None and prepared.created_at == stored(VoiceSession, prepared.pk)["created_at"]
    assert prepared._state.adding is False and prepared._state.db == "default"


def test_an_automatic_primary_key_comes_back_from_the_database():
    session = insert_session(new_session())
    first = insert_event(SessionEvent(session=session, kind="created", to_status="created", payload={"a": 1}))
    second = insert_event(SessionEvent(session=session, kind="note", payload={}))

    assert isinstance(first.pk, int) and second.pk > first.pk
    assert list(SessionEvent.objects.filter(session=session).values_list("pk", "kind", "payload")) == [
        (first.pk, "created", {"a": 1}),
        (second.pk, "note", {}),
    ]


def test_save_signals_are_sent_to_whoever_listens():
    heard = []

    def before(sender, instance, raw, using, update_fields, **kwargs):
        heard.append(("pre", instance.pk, instance._state.adding))

    def after(sender, instance, created, **kwargs):
        heard.append(("post", instance.pk, created, instance._state.adding))

    pre_save.connect(before, sender=VoiceSession)
    post_save.connect(after, sender=VoiceSession)
    try:
        session = insert_session(new_session())
    finally:
        pre_save.disconnect(before, sender=VoiceSession)
        post_save.disconnect(after, sender=VoiceSession)
    assert heard == [("pre", session.pk, True), ("post", session.pk, True, False)]


def test_a_refused_row_rolls_back_the_atomic_block_around_it(alice):
    insert_session(new_session(created_by=alice, idempotency_key="key-1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_session(new_session(created_by=alice, customer_id="written-then-undone", idempotency_key="key-2"))
        insert_session(new_session(created_by=alice, idempotency_key="key-1"))  # the same key again
    assert not VoiceSession.objects.filter(customer_id="written-then-undone").exists()
    assert VoiceSession.objects.filter(idempotency_key="key-1").count() == 1


def test_an_instance_of_another_model_is_refused():
    with pytest.raises(TypeError):
        insert_event(new_session())


@isolate_apps("sessions")
def test_a_model_whose_insert_carries_sql_of_its_own_is_refused():
    class Stamped(models.Model):  # noqa: DJ008 - never shown
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        at = models.DateTimeField(db_default=Now())

        class Meta:
            app_label = "sessions"

    with pytest.raises(ImproperlyConfigured, match="one parameter per field"):
        PreparedInsert(Stamped)(Stamped())


@pytest.mark.parametrize(
    "values",
    [
        # Equal to the defaults, as other objects: what the API's validated data holds.
        {"agent_type": "".join(["sup", "port"]), "locale": "-".join(["en", "US"]), "dynamic_variables": dict()},
        # The defaults' own objects, and Django's implicit ones ("" and None).
        {"agent_type": AgentType.SUPPORT, "phone_number": "", "conversation_id": None, "transcript": []},
        # Beside them: not the defaults.
        {"agent_type": AgentType.SALES, "locale": "fr-FR", "transcript": [{"role": "agent"}], "cost": 0},
        {"simulation": False, "upstream_status": 0, "failure_message": " ", "analysis": {"a": None}},
    ],
)
def test_values_at_or_beside_the_defaults_are_written_as_save_writes_them(values):
    prepared = insert_session(VoiceSession(customer_id="cust-defaults", **values))
    saved = VoiceSession(customer_id="cust-defaults", **values)
    saved.save()
    ours, theirs = stored(VoiceSession, prepared.pk), stored(VoiceSession, saved.pk)
    for differs in ("id", "created_at", "updated_at"):
        ours.pop(differs), theirs.pop(differs)
    assert ours == theirs
    for name, value in values.items():
        assert ours[name] == value
