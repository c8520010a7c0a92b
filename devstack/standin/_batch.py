"""How the stand-in runs a batch job, as Mistral does, at a pace tests can count on.

A job is QUEUED when created. Its first read after that (`batch.jobs.get`, or a
`batch.jobs.list` page that answers with it: a list moves on only the jobs of the page
it answers, as they were when it was asked) answers RUNNING, with `started_at`; its second read
runs every line at once and answers the end: SUCCESS when a line succeeded, FAILED when
none did (or there was none), TIMEOUT_EXCEEDED when its `timeout_hours` had passed
before it ran. Reads are the clock: no thread, no sleep, the same answers in every run.

Each line (`{"custom_id", "body"}`, from the input files or the inline `requests`) is
answered by the stand-in's own operation for the job's endpoint (`_completions`: chat,
fim, embeddings, classifiers, moderations, OCR; `agents.complete` for a job with an
`agent_id`), the job's `model` filling a body without one. The answers become files of
purpose `batch` in the files store, downloadable as any other: the `output_file`, one
JSONL line per line that succeeded (`{"id", "custom_id", "response": {"status_code",
"body"}, "error": null}`, the body with its `usage`), and the `error_file`, one per line
that failed (`"error": {"message", "code"}`), only when one did. Endpoints the stand-in
does not answer in a batch (conversations, audio) fail every line.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._routes import match
from ._wire import ApiError, Reply, error_payload

__all__ = ["LineRunner", "Outcome", "run_lines", "status_after"]

# (operation, body) -> the stand-in's answer, as a call of that operation would get it.
LineRunner = Callable[[str, dict[str, Any]], Reply]

# Endpoints whose lines the stand-in answers (Mistral's APIEndpoint values).
_RUNNABLE = frozenset(
    {
        "chat.complete",
        "fim.complete",
        "embeddings.create",
        "classifiers.classify",
        "classifiers.classify_chat",
        "classifiers.moderate",
        "classifiers.moderate_chat",
        "ocr.process",
    }
)


@dataclass
class Outcome:
    """What running a job's lines gave: the two files' lines and the counts."""

    outputs: list[bytes] = field(default_factory=list)
    errors: list[bytes] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)

    @property
    def succeeded(self) -> int:
        return len(self.outputs)

    @property
    def failed(self) -> int:
        return len(self.errors)


def _operation(endpoint: str, agent_id: str | None) -> str | None:
    if agent_id is not None and endpoint == "/v1/chat/completions":
        return "agents.complete"
    route = match("POST", endpoint)
    operation = route.operation if route else None
    return operation if operation in _RUNNABLE else None


def _line(custom_id: Any, response: Any, error: Any) -> bytes:
    entry = {
        "id": f"batch-{uuid.uuid4()}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return json.dumps(entry, separators=(",", ":")).encode() + b"\n"


def _failed(
    outcome: Outcome, custom_id: Any, status: int, message: str, code: str, body: Any = None
) -> None:
    outcome.messages[message] += 1
    response = {"status_code": status, "body": body or {"message": message, "code": code}}
    outcome.errors.append(_line(custom_id, response, {"message": message, "code": code}))


def run_lines(
    lines: Iterable[str],
    *,
    endpoint: str,
    model: str | None,
    agent_id: str | None,
    run: LineRunner,
) -> Outcome:
    """Every line of a job answered, in order, into its output or error lines."""
    outcome = Outcome()
    operation = _operation(endpoint, agent_id)
    for raw in lines:
        if not raw.strip():
            continue
        try:
            request = json.loads(raw)
        except ValueError:
            _failed(outcome, None, 400, "Invalid JSON line", "invalid_json")
            continue
        custom_id = request.get("custom_id") if isinstance(request, dict) else None
        body = request.get("body") if isinstance(request, dict) else None
        if not isinstance(body, dict):
            _failed(outcome, custom_id, 422, "A batch line needs a `body` object", "invalid_line")
            continue
        if operation is None:
            message = f"The stand-in does not run batch lines for {endpoint}"
            _failed(outcome, custom_id, 400, message, "unsupported_endpoint")
            continue
        body = {k: v for k, v in body.items() if k != "stream"}
        if operation == "agents.complete":
            body["agent_id"] = agent_id
        elif model is not None:
            body.setdefault("model", model)
        try:
            reply = run(operation, body)
        except ApiError as error:
            reply = error.reply()
        except Exception:  # a body the operation could not take: that line fails, not the job
            reply = Reply(500, error_payload("The line could not be answered", "internal_error"))
        if reply.status == 200 and isinstance(reply.payload, dict):
            response = {"status_code": 200, "body": reply.payload}
            outcome.outputs.append(_line(custom_id, response, None))
        else:
            payload = reply.payload if isinstance(reply.payload, Mapping) else {}
            detail = payload.get("detail")
            first = detail[0] if isinstance(detail, list) and detail else {}
            message = str(
                payload.get("message")
                or (first.get("msg") if isinstance(first, Mapping) else None)
                or f"The request failed ({reply.status})"
            )
            code = payload.get("code") or ("validation_error" if reply.status == 422 else "failed")
            _failed(outcome, custom_id, reply.status, message, str(code), reply.payload)
    return outcome


def status_after(outcome: Outcome, timed_out: bool) -> str:
    """The job's last status once its lines ran."""
    if timed_out:
        return "TIMEOUT_EXCEEDED"
    return "SUCCESS" if outcome.succeeded else "FAILED"
