"""The error tree and its one mapping to responses."""

import json

from shared.errors import (
    CODES,
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
from tests.support import error_code


def test_client_errors_have_mistrals_shape_with_category_and_code() -> None:
    """A NotFound maps to 404: Mistral's category in `type`, the cause in `code`."""
    mapped = error_response(NotFound.of("Conversation", "conv_1"), "req_1")
    body = json.loads(mapped.body)
    assert mapped.status == 404
    assert body == {
        "object": "error",
        "message": "Conversation 'conv_1' not found",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
        "request_id": "req_1",
    }


def test_a_raise_may_name_a_narrower_cause() -> None:
    """`code=` overrides the class's cause; the category stays the class's."""
    body = json.loads(error_response(RateLimited("x", 1, code="token_budget_exceeded")).body)
    assert (body["type"], body["code"]) == ("rate_limit_error", "token_budget_exceeded")


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
    assert error_code(json.loads(mapped.body)) == "internal_error"


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


def _classes(root: type) -> list[type]:
    found = [root]
    for sub in root.__subclasses__():
        found.extend(_classes(sub))
    return found


def test_every_code_the_gateway_can_answer_is_listed() -> None:
    """Each error class's code and each `code="..."` raised in the source is in CODES."""
    import re
    from pathlib import Path

    import devstack.router  # noqa: F401  (its error class joins the tree)
    import shared.http.web  # noqa: F401

    codes = {cls.code for cls in _classes(GatewayError)}
    root = Path(__file__).resolve().parents[2]
    for path in [
        *root.glob("shared/**/*.py"),
        *root.glob("functions/*/main.py"),
        *root.glob("devstack/router.py"),
    ]:
        codes |= set(re.findall(r'\bcode="([a-z_]+)"', path.read_text()))
    assert codes - set(CODES) == set()


def test_the_readme_lists_every_code() -> None:
    """The README's error table has one row per code, with its status."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code, (status, _) in CODES.items():
        assert f"| `{code}` | {status if status is not None else 'batch record'} |" in readme


def test_every_batch_rejection_kind_is_listed() -> None:
    """Each kind a batch message is rejected with is a listed code."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "shared" / "batch"
    kinds = set()
    for path in root.glob("*.py"):
        kinds |= set(re.findall(r'Rejection\(\s*"([a-z_]+)"', path.read_text()))
    assert kinds
    assert kinds - set(CODES) == set()
