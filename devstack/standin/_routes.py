"""The API's paths and the operation name each (method, path) pair maps to."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONVERSATION = r"/v1/conversations/(?P<conversation_id>[^/]+)"
_AGENT = r"/v1/agents/(?P<agent_id>[^/]+)"
_FILE = r"/v1/files/(?P<file_id>[^/]+)"
_LIBRARY = r"/v1/libraries/(?P<library_id>[^/]+)"
_DOCUMENT = _LIBRARY + r"/documents/(?P<document_id>[^/]+)"
_JOB = r"/v1/batch/jobs/(?P<job_id>[^/]+)"

# Order matters: `/v1/agents/pages` and `/v1/agents/completions` must be tried before
# `/v1/agents/{agent_id}`.
_ROUTES: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = tuple(
    (re.compile(pattern), methods)
    for pattern, methods in (
        (r"/v1/conversations", {"POST": "conversations.start", "GET": "conversations.list"}),
        (
            _CONVERSATION,
            {
                "GET": "conversations.get",
                "POST": "conversations.append",
                "DELETE": "conversations.delete",
            },
        ),
        (_CONVERSATION + "/history", {"GET": "conversations.history"}),
        (_CONVERSATION + "/messages", {"GET": "conversations.messages"}),
        (_CONVERSATION + "/restart", {"POST": "conversations.restart"}),
        (r"/v1/chat/completions", {"POST": "chat.complete"}),
        (r"/v1/fim/completions", {"POST": "fim.complete"}),
        (r"/v1/agents/completions", {"POST": "agents.complete"}),
        (r"/v1/embeddings", {"POST": "embeddings.create"}),
        (r"/v1/classifications", {"POST": "classifiers.classify"}),
        (r"/v1/chat/classifications", {"POST": "classifiers.classify_chat"}),
        (r"/v1/moderations", {"POST": "classifiers.moderate"}),
        (r"/v1/chat/moderations", {"POST": "classifiers.moderate_chat"}),
        (r"/v1/ocr", {"POST": "ocr.process"}),
        (r"/v1/audio/transcriptions", {"POST": "audio.transcriptions.complete"}),
        (r"/v1/audio/speech", {"POST": "audio.speech.complete"}),
        (r"/v1/agents", {"POST": "agents.create", "GET": "agents.list"}),
        (r"/v1/agents/pages", {"GET": "agents.list_pages"}),
        (_AGENT, {"GET": "agents.get", "PATCH": "agents.update", "DELETE": "agents.delete"}),
        (_AGENT + "/version", {"PATCH": "agents.update_version"}),
        (_AGENT + "/versions", {"GET": "agents.list_versions"}),
        (_AGENT + r"/versions/(?P<version>[^/]+)", {"GET": "agents.get_version"}),
        (
            _AGENT + "/aliases",
            {
                "PUT": "agents.create_alias",
                "GET": "agents.list_aliases",
                "DELETE": "agents.delete_alias",
            },
        ),
        # the models list (shared read-only, _models.py)
        (r"/v1/models", {"GET": "models.list"}),
        (r"/v1/models/(?P<model_id>[^/]+)", {"GET": "models.retrieve"}),
        # tenant-owned resources (_resources.py)
        (r"/v1/files", {"POST": "files.upload", "GET": "files.list"}),
        (_FILE, {"GET": "files.retrieve", "DELETE": "files.delete"}),
        (_FILE + "/content", {"GET": "files.download"}),
        (_FILE + "/url", {"GET": "files.get_signed_url"}),
        (r"/v1/libraries", {"GET": "libraries.list", "POST": "libraries.create"}),
        (
            _LIBRARY,
            {
                "GET": "libraries.get",
                "PATCH": "libraries.update",
                "PUT": "libraries.replace",
                "DELETE": "libraries.delete",
            },
        ),
        (
            _LIBRARY + "/documents",
            {"GET": "libraries.documents.list", "POST": "libraries.documents.upload"},
        ),
        (
            _DOCUMENT,
            {
                "GET": "libraries.documents.get",
                "PATCH": "libraries.documents.update",
                "PUT": "libraries.documents.replace",
                "DELETE": "libraries.documents.delete",
            },
        ),
        (_DOCUMENT + "/text_content", {"GET": "libraries.documents.text_content"}),
        (_DOCUMENT + "/status", {"GET": "libraries.documents.status"}),
        (_DOCUMENT + "/signed-url", {"GET": "libraries.documents.get_signed_url"}),
        (
            _DOCUMENT + "/extracted-text-signed-url",
            {"GET": "libraries.documents.extracted_text_signed_url"},
        ),
        (_DOCUMENT + "/reprocess", {"POST": "libraries.documents.reprocess"}),
        (
            _LIBRARY + "/share",
            {
                "GET": "libraries.accesses.list",
                "PUT": "libraries.accesses.update_or_create",
                "DELETE": "libraries.accesses.delete",
            },
        ),
        (r"/v1/batch/jobs", {"GET": "batch.jobs.list", "POST": "batch.jobs.create"}),
        (_JOB, {"GET": "batch.jobs.get", "DELETE": "batch.jobs.delete"}),
        (_JOB + "/cancel", {"POST": "batch.jobs.cancel"}),
    )
)

OPERATIONS: tuple[str, ...] = tuple(op for _, methods in _ROUTES for op in methods.values())


@dataclass(frozen=True)
class Route:
    """A matched path: `operation` is None when the path exists but not for this method."""

    operation: str | None
    params: dict[str, str]
    allowed: tuple[str, ...]


def match(method: str, path: str) -> Route | None:
    for pattern, methods in _ROUTES:
        found = pattern.fullmatch(path)
        if found:
            return Route(methods.get(method), found.groupdict(), tuple(methods))
    return None
