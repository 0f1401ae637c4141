import pytest

pytestmark = pytest.mark.django_db


def test_create_returns_contract_fields(alice_api):
    response = alice_api.post(
        "/voice/sessions",
        {"customer_id": "cust-1", "direction": "inbound", "locale": "en-US", "simulation": False},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "created"
    assert body["customer_id"] == "cust-1"
    assert body["session_id"]
    assert body["created_at"]
