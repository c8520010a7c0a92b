"""The error tree and its one mapping to responses."""

import json

from shared.errors import (
    CircuitOpen,
    GatewayError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    UpstreamRejected,
    ValidationFailed,
    error_response,
    field_error,
)


def test_client_errors_carry_their_status_and_type() -> None:
    """A NotFound maps to 404 with a stable type and the message."""
    mapped = error_response(NotFound("no such conversation"), "req_1")
    body = json.loads(mapped.body)
    assert mapped.status == 404
    assert body == {
        "object": "error",
        "type": "not_found",
        "message": "no such conversation",
        "param": None,
        "request_id": "req_1",
    }


def test_validation_errors_use_the_detail_list_the_sdk_parses() -> None:
    """422 bodies carry `detail` as a list of loc/msg/type entries."""
    exc = ValidationFailed([field_error(("body", "inputs"), "Field required", "missing")])
    body = json.loads(error_response(exc).body)
    assert body["detail"] == [
        {"loc": ["body", "inputs"], "msg": "Field required", "type": "missing"}
    ]
    assert error_response(exc).status == 422


def test_unexpected_exceptions_reveal_nothing() -> None:
    """A bare exception becomes a 500 whose body holds none of its text."""
    mapped = error_response(RuntimeError("SELECT secret FROM api_keys"), "req_2")
    assert mapped.status == 500
    assert b"SELECT" not in mapped.body
    assert json.loads(mapped.body)["type"] == "internal_error"


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    """429, 503 and circuit-open answers carry Retry-After of at least one second."""
    assert error_response(RateLimited("slow down", 0.2)).headers["Retry-After"] == "1"
    assert error_response(RateLimited("slow down", 2.5)).headers["Retry-After"] == "3"
    assert error_response(CircuitOpen(10)).headers["Retry-After"] == "10"
    assert error_response(ServiceUnavailable("db down")).status == 503


def test_upstream_rejections_pass_through_verbatim() -> None:
    """Mistral's own 4xx reaches the caller with the same status and body."""
    raw = b'{"object":"error","message":"bad model"}'
    mapped = error_response(UpstreamRejected(400, raw, "application/json"))
    assert (mapped.status, mapped.body) == (400, raw)


def test_every_error_class_has_a_status() -> None:
    """Every subclass of GatewayError declares an HTTP status between 400 and 599."""

    def walk(cls: type) -> list[type]:
        return [cls] + [c for sub in cls.__subclasses__() for c in walk(sub)]

    for cls in walk(GatewayError):
        assert 400 <= cls.status <= 599, cls
