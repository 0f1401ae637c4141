"""Input serializers whose fields are built once validate exactly as DRF's per-instance fields do."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework import serializers

from sessions.serializers import FieldsBuiltOnce, SessionCreateInput, SessionEndInput, SessionEventInput

CREATE_INPUTS = [
    {"customer_id": "cust-1"},
    {"customer_id": "cust-1", "locale": "pt-br", "agent_type": "sales", "dynamic_variables": {"plan": "gold"}},
    {"customer_id": "cust-1", "direction": "outbound"},  # no phone number
    {"customer_id": "cust-1", "direction": "outbound", "phone_number": "+14155550100"},
    {"customer_id": "", "direction": "sideways", "locale": "not a locale", "simulation": "yes"},
    {"customer_id": "x" * 129, "phone_number": "0800", "dynamic_variables": {"a": {"deep": 1}}},
    {"customer_id": ["a list"], "agent_type": None},
    {},
]


class DeepCopiedCreateInput(SessionCreateInput):
    """The same serializer with DRF's own get_fields: a deep copy per instance."""

    def get_fields(self):
        return copy.deepcopy(self._declared_fields)


def outcome(serializer_class, data) -> tuple[bool, dict]:
    serializer = serializer_class(data=data)
    valid = serializer.is_valid()
    return valid, (dict(serializer.validated_data) if valid else serializer.errors)


@pytest.mark.parametrize("data", CREATE_INPUTS)
def test_validated_data_and_errors_match_drfs_own(data):
    assert outcome(SessionCreateInput, data) == outcome(DeepCopiedCreateInput, data)


def test_each_instance_has_its_own_bound_fields():
    first, second = SessionCreateInput(data={}), SessionCreateInput(data={})
    for name in first.fields:
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
        assert first.fields[name].field_name == name
    # Shared, as they are read-only: the validators of one field.
    assert first.fields["customer_id"].validators is second.fields["customer_id"].validators


def test_threads_validating_at_once_keep_their_own_answers():
    def validate(number: int) -> tuple[bool, object]:
        data = {"customer_id": f"cust-{number}"} if number % 2 else {"customer_id": "", "locale": "??"}
        return outcome(SessionCreateInput, data)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(validate, range(400)))
    for number, (valid, result) in enumerate(results):
        if number % 2:
            assert valid and result["customer_id"] == f"cust-{number}"
        else:
            assert not valid and set(result) == {"customer_id", "locale"}


def test_the_end_and_event_inputs_validate_as_before():
    assert outcome(SessionEndInput, {}) == (True, {"reason": "user"})
    assert outcome(SessionEndInput, {"reason": "nope"})[0] is False
    assert outcome(SessionEventInput, {"type": "mode", "mode": "speaking"}) == (
        True,
        {"type": "mode", "mode": "speaking"},
    )
    valid, errors = outcome(SessionEventInput, {"type": "connected"})
    assert not valid and "conversation_id" in errors


def test_a_serializer_with_fields_of_its_own_is_refused():
    class WithChild(FieldsBuiltOnce, serializers.Serializer):
        tags = serializers.ListField(child=serializers.CharField())

    class WithNested(FieldsBuiltOnce, serializers.Serializer):
        inner = SessionEndInput()

    for serializer_class in (WithChild, WithNested):
        with pytest.raises(TypeError, match="has fields of its own"):
            serializer_class(data={}).is_valid()
