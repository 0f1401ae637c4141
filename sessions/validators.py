"""Shapes of the values clients send, with messages that say what is allowed."""

from __future__ import annotations

import re

from rest_framework import serializers
from rest_framework.fields import empty

# Every pattern is anchored with \A and \Z: "$" also matches before a final newline ("name\n" would pass).
# A caller's phone number in E.164, with its "+", is a customer id too: an inbound call knows its customer by it.
CUSTOMER_ID = re.compile(r"\A(?:[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}|\+[1-9]\d{6,14})\Z")
# BCP 47 language tag, the subset people use: language, optional script, optional region.
LOCALE = re.compile(r"\A(?P<lang>[A-Za-z]{2,3})(?:-(?P<script>[A-Za-z]{4}))?(?:-(?P<region>[A-Za-z]{2}|\d{3}))?\Z")
# The shape of an agent platform's conversation id wherever one arrives (API, webhook, URL path); 128 is what
# we store. Letters, digits and . _ : - only (no "." or ".." alone: it goes into URL paths and file names).
# Anchored with \A and \Z: "$" also matches before a final newline, so "conv\n" would pass.
CONVERSATION_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")
E164 = re.compile(r"\A\+[1-9]\d{6,14}\Z")
# A telephony provider's id of one call (Twilio's CallSid "CA" + 32 hex, a SIP Call-ID such as "a84b4c76e6@host").
CALL_SID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}\Z")
DYNAMIC_VARIABLE_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_DYNAMIC_VARIABLES = 50
MAX_DYNAMIC_VALUE_LENGTH = 1000


def validate_customer_id(value: str) -> str:
    if not CUSTOMER_ID.match(value):
        raise serializers.ValidationError(
            "Use 1 to 128 characters: letters, digits and . _ : @ -, starting with a letter or digit; "
            "or a phone number in E.164 form, e.g. +14155550100."
        )
    return value


def normalize_locale(value: str) -> str:
    match = LOCALE.match(value)
    if not match:
        raise serializers.ValidationError(
            f"{value!r} is not a language tag; use a form such as en, en-US, pt-BR or zh-Hans-CN."
        )
    parts = [match["lang"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    return "-".join(parts)


class LocaleField(serializers.CharField):
    """A BCP 47 language tag, normalised (en-us -> en-US)."""

    def to_internal_value(self, data) -> str:
        return normalize_locale(super().to_internal_value(data))


def validate_phone_number(value: str) -> str:
    if not E164.match(value):
        raise serializers.ValidationError("Use the E.164 form: + then 7 to 15 digits, e.g. +14155550100.")
    return value


def validate_dynamic_variables(value: object) -> dict:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be an object of name → string, number or boolean.")
    if len(value) > MAX_DYNAMIC_VARIABLES:
        raise serializers.ValidationError(f"At most {MAX_DYNAMIC_VARIABLES} variables.")
    for name, item in value.items():
        if not DYNAMIC_VARIABLE_NAME.match(name):
            raise serializers.ValidationError(
                f"{name!r} is not a variable name; use letters, digits and _, starting with a letter or _."
            )
        if isinstance(item, str):
            if len(item) > MAX_DYNAMIC_VALUE_LENGTH:
                raise serializers.ValidationError(f"{name!r} is longer than {MAX_DYNAMIC_VALUE_LENGTH} characters.")
        elif not isinstance(item, (bool, int, float)):
            raise serializers.ValidationError(f"{name!r} must be a string, number or boolean.")
    return value


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true/false (or the strings "true"/"false"): 'maybe' is an error, not False."""

    default_error_messages = {"invalid": "Must be true or false."}
    NULL_VALUES = set()
    _WORDS = {"true": True, "True": True, "false": False, "False": False}

    def to_internal_value(self, data):
        # Compared by identity: 1 == True and 0 == False, so DRF's set lookups take 1, 0 and 1.0 as booleans.
        if data is True or data is False:
            return data
        if isinstance(data, str) and data in self._WORDS:
            return self._WORDS[data]
        self.fail("invalid")


class QueryBooleanField(StrictBooleanField):
    """A true/false query parameter: absent means unset (DRF reads a missing boolean in a form as false)."""

    default_empty_html = empty


def choice_field(choices, *, name: str, **kwargs) -> serializers.ChoiceField:
    allowed = ", ".join(value for value, _ in choices)
    return serializers.ChoiceField(
        choices=choices,
        error_messages={"invalid_choice": f'"{{input}}" is not a valid {name}; use one of: {allowed}.'},
        **kwargs,
    )
