"""A Mistral batch job's price before it runs: the token reservation its create makes.

Each line of the job (`{"custom_id", "body"}`, from its input files and its inline
`requests`) is priced as the call it stands for (`shared.limits.estimate.line_reservation`:
the job's endpoint names the operation, `agents.complete` with the job's agent when it
has an `agent_id`), and the create reserves the sum of its tenant's token budget, or is
refused (429 `token_budget_exceeded`) when that does not fit. The reservation is kept on
the job's record and settled against the job's real tokens when it is metered
(`operations._settle_spend`).

The input files are read from Mistral as a stream, a line at a time, never held whole,
and at most `BATCH_ESTIMATE_MAX_BYTES` of them in all (only the line being read is
held). Past that cap reading stops and the estimate is scaled: the lines read priced,
then multiplied by the files' whole size (Mistral's `bytes` for each, recorded at upload)
over the bytes of those lines, so the rest is priced as the lines before it were. If
not one whole line fits under the cap, the files are priced at a token per four bytes,
plus one completion reserve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shared.config import Settings
from shared.conversations import store as conversation_store
from shared.db import Pool
from shared.errors import ValidationFailed, field_error
from shared.limits.estimate import line_reservation
from shared.mistral import MistralClient
from shared.resources.records import check_owned, file_sizes

__all__ = ["BatchJobRequest", "batch_job_estimate", "check_batch_job"]

# Mistral's batch endpoints (the SDK's APIEndpoint) and the operations whose calls their
# lines stand for; others (conversations) are priced from their whole body.
_ENDPOINT_OPERATIONS = {
    "/v1/chat/completions": "chat.complete",
    "/v1/fim/completions": "fim.complete",
    "/v1/embeddings": "embeddings.create",
    "/v1/moderations": "classifiers.moderate",
    "/v1/chat/moderations": "classifiers.moderate_chat",
    "/v1/classifications": "classifiers.classify",
    "/v1/chat/classifications": "classifiers.classify_chat",
    "/v1/ocr": "ocr.process",
    "/v1/audio/transcriptions": "audio.transcriptions.complete",
}


@dataclass(frozen=True)
class BatchJobRequest:
    """A batch job create whose references are the tenant's: its body as sent, its input
    files with the sizes the gateway knows, and the agent its lines run with."""

    body: dict[str, Any]
    input_files: tuple[str, ...] = ()
    sizes: Mapping[str, int] = field(default_factory=dict)
    agent: Mapping[str, Any] | None = None

    @property
    def operation(self) -> str | None:
        endpoint = self.body.get("endpoint")
        if self.agent is not None and endpoint == "/v1/chat/completions":
            return "agents.complete"
        return _ENDPOINT_OPERATIONS.get(endpoint) if isinstance(endpoint, str) else None


def check_batch_job(pool: Pool, tenant: str, body: dict[str, Any]) -> BatchJobRequest:
    """The create's `input_files` and `agent_id` checked to be the tenant's (404 as for a
    missing one, 422 for input files that are no list of ids)."""
    files = body.get("input_files")
    if files is not None and not (
        isinstance(files, list) and all(isinstance(f, str) for f in files)
    ):
        msg = "Input should be a list of file ids"
        raise ValidationFailed([field_error(("body", "input_files"), msg, "list_type")])
    agent_id = body.get("agent_id")
    agent = None
    with pool.connection() as conn:
        check_owned(conn, tenant, "file", files or [])
        sizes = file_sizes(conn, tenant, files or [])
        if isinstance(agent_id, str):
            agent = conversation_store.require_agent(conn, tenant, agent_id)
    return BatchJobRequest(body, tuple(files or ()), sizes, agent)


@dataclass
class _Tally:
    """What the lines read so far cost, and how many bytes they were."""

    tokens: int = 0
    read_bytes: int = 0
    capped: bool = False


def batch_job_estimate(client: MistralClient, settings: Settings, job: BatchJobRequest) -> int:
    """The tokens the job's lines may cost (at least 1): its inline `requests` and its
    input files, read from Mistral within `batch_estimate_max_bytes` and scaled past it."""
    operation, agent = job.operation, job.agent
    inline = job.body.get("requests")
    tokens = 0
    if isinstance(inline, list):
        for entry in inline:
            body = entry.get("body") if isinstance(entry, dict) else None
            tokens += line_reservation(settings, operation, body, agent)
    tally = _Tally()
    limit = settings.batch_estimate_max_bytes
    for file_id in dict.fromkeys(job.input_files):
        if tally.read_bytes >= limit:
            tally.capped = True
        if tally.capped:
            break
        path = f"/v1/files/{quote(file_id, safe='')}/content"
        stream = client.download("files.download", path)
        try:
            for line in _capped_lines(stream.chunks(), limit - tally.read_bytes, tally):
                tally.tokens += _line_tokens(settings, operation, agent, line)
        finally:
            # Stopping at the cap is no failure of Mistral's: close it as a success.
            stream.close(True)
    if tally.capped:
        tokens += _scaled(settings, job, tally)
    else:
        tokens += tally.tokens
    return max(1, tokens)


def _line_tokens(
    settings: Settings, operation: str | None, agent: Mapping[str, Any] | None, line: bytes
) -> int:
    if not line.strip():
        return 0
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return 0  # Mistral fails the line: it costs nothing
    body = entry.get("body") if isinstance(entry, dict) else None
    return line_reservation(settings, operation, body, agent)


def _scaled(settings: Settings, job: BatchJobRequest, tally: _Tally) -> int:
    """The capped files' price: what was read, in proportion to their whole size."""
    total = sum(job.sizes.get(f, 0) for f in dict.fromkeys(job.input_files))
    total = max(total, tally.read_bytes)
    if tally.read_bytes == 0:
        return math.ceil(total / 4) + settings.token_reserve_completion
    return math.ceil(tally.tokens * total / tally.read_bytes)


def _capped_lines(chunks: Iterable[bytes], limit: int, tally: _Tally) -> Iterator[bytes]:
    """The whole lines of a byte stream within its first `limit` bytes, one at a time
    (only the line being read is held); `tally` counts their bytes (newlines included)
    and notes when the stream went on past the limit (the cut line is not given)."""
    pending = bytearray()
    seen = 0
    for chunk in chunks:
        if seen + len(chunk) > limit:
            chunk = chunk[: limit - seen]
            tally.capped = True
        seen += len(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start:end]
            tally.read_bytes += len(pending) + 1
            yield bytes(pending)
            pending.clear()
            start = end + 1
        pending += chunk[start:]
        if tally.capped:
            return
    if pending:
        tally.read_bytes += len(pending)
        yield bytes(pending)
