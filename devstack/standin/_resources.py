"""Mistral's stored resources in the stand-in: files, libraries with their documents and
accesses, batch jobs. Shapes are the SDK's own models' (`mistralai.client.models`:
CreateFileResponse, ListFilesResponse, Library, ListLibrariesResponse, Document,
ListDocumentsResponse, Sharing, BatchJob, ListBatchJobsResponse); uploads are multipart.
Documents are processed at once. A batch job runs at its reads: QUEUED when created,
RUNNING at its first read, ended at its second, with its `output_file` and `error_file`
in the files store (`_batch` says how, and how each line is answered)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from werkzeug.formparser import parse_form_data

from ._batch import LineRunner, run_lines, status_after
from ._sdk import sdk_models, sdk_request
from ._wire import ApiError, Reply, bad_request, error_payload, not_found, now, unprocessable

__all__ = ["OPERATIONS", "Resources"]

_OWNER = "00000000-0000-4000-8000-000000000001"
_ORG = "00000000-0000-4000-8000-0000000000aa"
_SIGNED = "https://standin.invalid/signed/"
_BATCH_DONE = ("SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED")
# A libraries page_token is opaque to clients; this one is an offset behind a prefix.
_CURSOR_PREFIX = "lt_"

Query = Mapping[str, list[str]]


def _first(query: Query, name: str) -> str | None:
    found = query.get(name) or []
    return found[0] if found else None


def _int(query: Query, name: str, default: int) -> int:
    raw = _first(query, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise unprocessable(
            [{"loc": ["query", name], "msg": "Input should be a valid integer", "type": "int"}]
        ) from None
    if value < 0:
        raise unprocessable(
            [{"loc": ["query", name], "msg": "Input should be >= 0", "type": "greater_than"}]
        )
    return value


def _bool(query: Query, name: str) -> bool | None:
    """A boolean query parameter as Mistral's server reads one; 422 if it is none."""
    raw = _first(query, name)
    if raw is None:
        return None
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.lower())
    if value is None:
        msg = "Input should be a valid boolean, unable to interpret input"
        raise unprocessable([{"loc": ["query", name], "msg": msg, "type": "bool_parsing"}])
    return value


def _attributes(query: Query) -> dict[str, Any] | None:
    """`filters_attributes`: a JSON object whose every value a document's `attributes`
    must hold (JSON containment; `{}` filters nothing); 422 if it is no JSON object."""
    raw = _first(query, "filters_attributes")
    if raw is None:
        return None
    try:
        wanted = json.loads(raw)
    except ValueError:
        wanted = None
    if not isinstance(wanted, dict):
        msg = "Input should be a JSON object"
        raise unprocessable([{"loc": ["query", "filters_attributes"], "msg": msg, "type": "dict"}])
    return wanted or None


def _holds(have: Any, wanted: Any) -> bool:
    """PostgreSQL's `@>` on JSON: objects by key, arrays by element, scalars equal."""
    if isinstance(wanted, dict):
        return isinstance(have, dict) and all(
            k in have and _holds(have[k], w) for k, w in wanted.items()
        )
    if isinstance(wanted, list):
        if not isinstance(have, list):
            return False
        return all(any(_holds(h, w) for h in have) for w in wanted)
    return type(have) is type(wanted) and have == wanted


def _pagination(total: int, page: int, page_size: int) -> dict[str, Any]:
    pages = -(-total // page_size) if page_size else 0
    return {
        "total_items": total,
        "total_pages": pages,
        "current_page": page,
        "page_size": page_size,
        "has_more": (page + 1) < pages,
    }


def _json_body(body: bytes, model: str) -> dict[str, Any]:
    """The JSON body as the SDK's request model `model` reads it, refused with Mistral's
    422 unless that model takes it (as Mistral's server checks its own)."""
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, error_payload("Invalid JSON body", "invalid_json")) from None
    if not isinstance(parsed, dict):
        raise unprocessable([{"loc": ["body"], "msg": "Input should be an object", "type": "dict"}])
    # What Mistral's server works with: the values as its model read them (`false` for
    # an integer is 0), unknown fields dropped.
    dumped: dict[str, Any] = sdk_request(model, parsed).model_dump(mode="json", by_alias=True)
    return dumped


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, str, bytes]]:
    """The form fields and the one file (name, content type, bytes) of a multipart body."""
    environ = {
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": content_type,
        "REQUEST_METHOD": "POST",
    }
    _, form, files = parse_form_data(environ)
    upload = files.get("file")
    if upload is None:
        raise unprocessable([{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}])
    data = upload.read()
    return dict(form.items()), (upload.filename or "upload", upload.mimetype or "", data)


def _page(items: list[dict[str, Any]], page: int, page_size: int) -> list[dict[str, Any]]:
    return items[page * page_size : (page + 1) * page_size]


class Resources:
    """Files, libraries, documents, shares and batch jobs, behind one lock. `run_line`
    answers one line of a batch job (the store's own operations)."""

    def __init__(self, run_line: LineRunner | None = None) -> None:
        self._lock = threading.Lock()
        self._run_line = run_line
        self.reset()

    def reset(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.libraries: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, Any]] = {}
        self.texts: dict[str, str] = {}
        self.shares: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        # A job's lines and its deadline (epoch seconds), kept until it runs.
        self.job_inputs: dict[str, dict[str, Any]] = {}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "files": self.files,
                "contents": {k: base64.b64encode(v).decode() for k, v in self.contents.items()},
                "libraries": self.libraries,
                "documents": self.documents,
                "texts": self.texts,
                "shares": self.shares,
                "jobs": self.jobs,
                "job_inputs": self.job_inputs,
            }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        with self._lock:
            self.reset()
            self.files = dict(snapshot.get("files", {}))
            self.contents = {
                k: base64.b64decode(v) for k, v in snapshot.get("contents", {}).items()
            }
            self.libraries = dict(snapshot.get("libraries", {}))
            self.documents = dict(snapshot.get("documents", {}))
            self.texts = dict(snapshot.get("texts", {}))
            self.shares = dict(snapshot.get("shares", {}))
            self.jobs = dict(snapshot.get("jobs", {}))
            self.job_inputs = dict(snapshot.get("job_inputs", {}))

    # -- files ---------------------------------------------------------------------------

    def _file(self, file_id: str) -> dict[str, Any]:
        found = self.files.get(file_id)
        if found is None:
            raise not_found("File", file_id)
        return found

    def upload_file(self, content_type: str, body: bytes, commit: bool) -> Reply:
        form, (filename, mimetype, data) = _multipart(content_type, body)
        purpose = form.get("purpose") or "fine-tune"
        visibility = form.get("visibility") or "workspace"
        expiry = form.get("expiry")
        created = int(time.time())
        record = {
            "id": str(uuid.uuid4()),
            "object": "file",
            "bytes": len(data),  # the wire name of the SDK's size_bytes
            "created_at": created,
            "filename": filename,
            "purpose": purpose,
            "sample_type": "batch_request" if purpose == "batch" else "instruct",
            "source": "upload",
            "num_lines": data.count(b"\n") if filename.endswith(".jsonl") else None,
            "mimetype": mimetype or None,
            "signature": hashlib.sha256(data).hexdigest(),
            "expires_at": created + int(expiry) * 3600 if expiry and expiry.isdigit() else None,
            "visibility": visibility,
        }
        if commit:
            with self._lock:
                self.files[record["id"]] = record
                self.contents[record["id"]] = data
        return Reply(200, record)

    def list_files(self, query: Query) -> Reply:
        page, page_size = _int(query, "page", 0), _int(query, "page_size", 100) or 100
        purpose, search = _first(query, "purpose"), _first(query, "search")
        one_of = {
            "mimetype" if name == "mimetypes" else name: wanted
            for name in ("source", "sample_type", "mimetypes")
            if (wanted := query.get(name))
        }
        with self._lock:
            files = [
                f
                for f in reversed(self.files.values())
                if (purpose is None or f["purpose"] == purpose)
                and (not search or search.lower() in f["filename"].lower())
                and all(f.get(field) in wanted for field, wanted in one_of.items())
            ]
        total = len(files) if _bool(query, "include_total") is not False else None
        return Reply(200, {"data": _page(files, page, page_size), "object": "list", "total": total})

    def retrieve_file(self, file_id: str) -> Reply:
        with self._lock:
            return Reply(200, {**self._file(file_id), "deleted": False})

    def delete_file(self, file_id: str, commit: bool) -> Reply:
        with self._lock:
            self._file(file_id)
            if commit:
                del self.files[file_id]
                self.contents.pop(file_id, None)
        return Reply(200, {"id": file_id, "object": "file", "deleted": True})

    def download_file(self, file_id: str) -> Reply:
        with self._lock:
            record = self._file(file_id)
            data = self.contents.get(file_id, b"")
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{record["filename"]}"',
        }
        return Reply(200, raw=data, headers=headers)

    def file_url(self, file_id: str) -> Reply:
        with self._lock:
            self._file(file_id)
        return Reply(200, {"url": _SIGNED + "files/" + file_id})

    # -- libraries -----------------------------------------------------------------------

    def _library(self, library_id: str) -> dict[str, Any]:
        found = self.libraries.get(library_id)
        if found is None:
            raise not_found("Library", library_id)
        return found

    def create_library(self, body: bytes, commit: bool) -> Reply:
        request = _json_body(body, "CreateLibraryRequest")
        name = request.get("name")
        if not isinstance(name, str):
            raise unprocessable(
                [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]
            )
        stamp = now()
        library = {
            "id": str(uuid.uuid4()),
            "name": name,
            "created_at": stamp,
            "updated_at": stamp,
            "owner_id": _OWNER,
            "owner_type": request.get("owner_type") or "User",
            "total_size": 0,
            "nb_documents": 0,
            "chunk_size": request.get("chunk_size"),
            "emoji": None,
            "description": request.get("description"),
            "generated_description": None,
            "generated_name": None,
        }
        if commit:
            with self._lock:
                self.libraries[library["id"]] = library
        return Reply(201, library)

    def list_libraries(self, query: Query) -> Reply:
        """By `page` (with `pagination`) or after a `page_token` (without it); each page
        names the next in `next_page_token`. One owner here: `filter_owned_by_me`, either
        way, lists them all."""
        page, page_size = _int(query, "page", 0), _int(query, "page_size", 100) or 100
        search = _first(query, "search")
        _bool(query, "filter_owned_by_me")
        token = _first(query, "page_token")
        offset = page * page_size
        if token:
            raw = token.removeprefix(_CURSOR_PREFIX)
            if not token.startswith(_CURSOR_PREFIX) or not raw.isdigit():
                raise bad_request(f"Invalid page_token {token!r}", "invalid_page_token")
            offset = int(raw)
        with self._lock:
            found = [
                dict(lib)
                for lib in reversed(self.libraries.values())
                if not search or search.lower() in lib["name"].lower()
            ]
        end = offset + page_size
        answer: dict[str, Any] = {"data": found[offset:end]}
        if not token:
            answer["pagination"] = _pagination(len(found), page, page_size)
        answer["next_page_token"] = f"{_CURSOR_PREFIX}{end}" if end < len(found) else None
        return Reply(200, answer)

    def get_library(self, library_id: str) -> Reply:
        with self._lock:
            return Reply(200, dict(self._library(library_id)))

    def update_library(self, library_id: str, body: bytes, commit: bool) -> Reply:
        request = _json_body(body, "UpdateLibraryRequest")
        with self._lock:
            library = dict(self._library(library_id))
            for name in ("name", "description"):
                if name in request and request[name] is not None:
                    library[name] = request[name]
            library["updated_at"] = now()
            if commit:
                self.libraries[library_id] = library
        return Reply(200, library)

    def delete_library(self, library_id: str, commit: bool) -> Reply:
        with self._lock:
            library = self._library(library_id)
            if commit:
                del self.libraries[library_id]
                for doc_id in [
                    d for d, doc in self.documents.items() if doc["library_id"] == library_id
                ]:
                    del self.documents[doc_id]
                self.shares.pop(library_id, None)
        return Reply(200, library)

    def _recount(self, library_id: str) -> None:
        docs = [d for d in self.documents.values() if d["library_id"] == library_id]
        library = self.libraries[library_id]
        library["nb_documents"] = len(docs)
        library["total_size"] = sum(d["size"] or 0 for d in docs)
        library["updated_at"] = now()

    # -- documents -----------------------------------------------------------------------

    def _document(self, library_id: str, document_id: str) -> dict[str, Any]:
        self._library(library_id)
        found = self.documents.get(document_id)
        if found is None or found["library_id"] != library_id:
            raise not_found("Document", document_id)
        return found

    def upload_document(
        self, library_id: str, content_type: str, body: bytes, commit: bool
    ) -> Reply:
        _, (filename, mimetype, data) = _multipart(content_type, body)
        text = data.decode("utf-8", errors="replace")
        stamp = now()
        document = {
            "id": str(uuid.uuid4()),
            "library_id": library_id,
            "hash": hashlib.sha256(data).hexdigest(),
            "mime_type": mimetype or None,
            "extension": filename.rsplit(".", 1)[-1] if "." in filename else None,
            "size": len(data),
            "name": filename,
            "created_at": stamp,
            "process_status": "done",
            "uploaded_by_id": _OWNER,
            "uploaded_by_type": "User",
            "processing_status": "Completed",
            "tokens_processing_total": max(1, len(text) // 4),
            "summary": None,
            "last_processed_at": stamp,
            "number_of_pages": 1,
            "tokens_processing_main_content": max(1, len(text) // 4),
            "tokens_processing_summary": 0,
            "url": None,
            "attributes": None,
            "expires_at": None,
        }
        with self._lock:
            self._library(library_id)
            if commit:
                self.documents[document["id"]] = document
                self.texts[document["id"]] = text
                self._recount(library_id)
        return Reply(200, document)

    def list_documents(self, library_id: str, query: Query) -> Reply:
        page, page_size = _int(query, "page", 0), _int(query, "page_size", 100) or 100
        search = _first(query, "search")
        attributes = _attributes(query)
        by_name = _first(query, "sort_by") == "name"
        ascending = _first(query, "sort_order") == "asc"
        with self._lock:
            self._library(library_id)
            docs = [
                dict(d)
                for d in self.documents.values()
                if d["library_id"] == library_id
                and (not search or search.lower() in d["name"].lower())
                and (attributes is None or _holds(d.get("attributes") or {}, attributes))
            ]
        if by_name:
            docs.sort(key=lambda d: d["name"].lower(), reverse=not ascending)
        elif not ascending:
            docs.reverse()
        return Reply(
            200,
            {
                "pagination": _pagination(len(docs), page, page_size),
                "data": _page(docs, page, page_size),
            },
        )

    def get_document(self, library_id: str, document_id: str) -> Reply:
        with self._lock:
            return Reply(200, dict(self._document(library_id, document_id)))

    def update_document(
        self, library_id: str, document_id: str, body: bytes, commit: bool
    ) -> Reply:
        request = _json_body(body, "UpdateDocumentRequest")
        with self._lock:
            document = dict(self._document(library_id, document_id))
            for name in ("name", "attributes", "expires_at"):
                if name in request and (request[name] is not None or name != "name"):
                    document[name] = request[name]
            if commit:
                self.documents[document_id] = document
        return Reply(200, document)

    def delete_document(self, library_id: str, document_id: str, commit: bool) -> Reply:
        with self._lock:
            self._document(library_id, document_id)
            if commit:
                del self.documents[document_id]
                self.texts.pop(document_id, None)
                self._recount(library_id)
        return Reply(204)

    def document_text(self, library_id: str, document_id: str) -> Reply:
        with self._lock:
            self._document(library_id, document_id)
            return Reply(200, {"text": self.texts.get(document_id, "")})

    def document_status(self, library_id: str, document_id: str) -> Reply:
        with self._lock:
            doc = self._document(library_id, document_id)
            return Reply(
                200,
                {
                    "document_id": document_id,
                    "process_status": doc["process_status"],
                    "processing_status": doc["processing_status"],
                },
            )

    def document_url(self, library_id: str, document_id: str, what: str) -> Reply:
        with self._lock:
            self._document(library_id, document_id)
        return Reply(200, f"{_SIGNED}{what}/{document_id}")

    def reprocess(self, library_id: str, document_id: str) -> Reply:
        with self._lock:
            self._document(library_id, document_id)
        return Reply(204)

    # -- accesses ------------------------------------------------------------------------

    def list_shares(self, library_id: str) -> Reply:
        with self._lock:
            self._library(library_id)
            return Reply(200, {"data": list(self.shares.get(library_id, []))})

    def share(self, library_id: str, body: bytes, commit: bool) -> Reply:
        request = _json_body(body, "SharingRequest")
        for name in ("level", "share_with_uuid", "share_with_type"):
            if not isinstance(request.get(name), str):
                raise unprocessable(
                    [{"loc": ["body", name], "msg": "Field required", "type": "missing"}]
                )
        sharing = {
            "library_id": library_id,
            "org_id": request.get("org_id") or _ORG,
            "role": request["level"],
            "share_with_type": request["share_with_type"],
            "share_with_uuid": request["share_with_uuid"],
            "user_id": request["share_with_uuid"] if request["share_with_type"] == "User" else None,
        }
        with self._lock:
            self._library(library_id)
            kept = [
                s
                for s in self.shares.get(library_id, [])
                if s["share_with_uuid"] != sharing["share_with_uuid"]
            ]
            if commit:
                self.shares[library_id] = [*kept, sharing]
        return Reply(200, sharing)

    def unshare(self, library_id: str, body: bytes, commit: bool) -> Reply:
        request = _json_body(body, "SharingDelete")
        uuid_ = request.get("share_with_uuid")
        with self._lock:
            self._library(library_id)
            found = [s for s in self.shares.get(library_id, []) if s["share_with_uuid"] == uuid_]
            if not found:
                raise not_found("Sharing", str(uuid_))
            if commit:
                self.shares[library_id] = [
                    s for s in self.shares[library_id] if s["share_with_uuid"] != uuid_
                ]
        return Reply(200, found[0])

    # -- batch jobs ----------------------------------------------------------------------

    def _job(self, job_id: str) -> dict[str, Any]:
        found = self.jobs.get(job_id)
        if found is None:
            raise not_found("Batch job", job_id)
        return found

    def create_job(self, body: bytes, commit: bool) -> Reply:
        request = _json_body(body, "CreateBatchJobRequest")
        endpoint = request.get("endpoint")
        if not isinstance(endpoint, str):
            raise unprocessable(
                [{"loc": ["body", "endpoint"], "msg": "Field required", "type": "missing"}]
            )
        files = request.get("input_files") or []
        with self._lock:
            for file_id in files:
                self._file(str(file_id))
            lines = [
                line
                for f in files
                for line in self.contents.get(str(f), b"").decode("utf-8", "replace").splitlines()
                if line.strip()
            ]
        lines += [json.dumps(r) for r in request.get("requests") or []]
        created = int(time.time())
        job = _job_shape(
            {
                "id": str(uuid.uuid4()),
                "object": "batch",
                "input_files": list(files),
                "metadata": request.get("metadata"),
                "endpoint": endpoint,
                "model": request.get("model"),
                "agent_id": request.get("agent_id"),
                "output_file": None,
                "error_file": None,
                "errors": [],
                "outputs": None,
                "status": "QUEUED",
                "created_at": created,
                "total_requests": len(lines),
                "completed_requests": 0,
                "succeeded_requests": 0,
                "failed_requests": 0,
                "started_at": None,
                "completed_at": None,
            }
        )
        hours = request.get("timeout_hours")
        deadline = created + (hours if isinstance(hours, int) else 24) * 3600
        if commit:
            with self._lock:
                self.jobs[job["id"]] = job
                self.job_inputs[job["id"]] = {"lines": lines, "deadline": deadline}
        return Reply(200, job)

    def _advance(self, job_id: str) -> dict[str, Any]:
        """A read of the job moves it on one step (see `_batch`); its new body."""
        job = self.jobs[job_id]
        if job["status"] == "QUEUED":
            job = {**job, "status": "RUNNING", "started_at": int(time.time())}
        elif job["status"] == "RUNNING":
            job = self._finish(job)
        self.jobs[job_id] = job
        return job

    def _finish(self, job: dict[str, Any]) -> dict[str, Any]:
        inputs = self.job_inputs.pop(job["id"], None) or {"lines": [], "deadline": 0}
        ended = int(time.time())
        timed_out = ended >= int(inputs["deadline"])
        outcome = run_lines(
            [] if timed_out or self._run_line is None else inputs["lines"],
            endpoint=job["endpoint"],
            model=job.get("model"),
            agent_id=job.get("agent_id"),
            run=self._run_line or (lambda operation, body: Reply(500)),
        )
        if outcome.outputs:
            job["output_file"] = self._result_file(job["id"], "output", outcome.outputs, ended)
        if outcome.errors:
            job["error_file"] = self._result_file(job["id"], "error", outcome.errors, ended)
        return _job_shape(
            {
                **job,
                "status": status_after(outcome, timed_out),
                "completed_requests": outcome.succeeded + outcome.failed,
                "succeeded_requests": outcome.succeeded,
                "failed_requests": outcome.failed,
                "errors": [{"message": m, "count": n} for m, n in outcome.messages.items()],
                "completed_at": ended,
            }
        )

    def _result_file(self, job_id: str, what: str, lines: list[bytes], created: int) -> str:
        """A job's output or error file, stored as an uploaded one is; its id."""
        data = b"".join(lines)
        record = sdk_models().CreateFileResponse.model_validate(
            {
                "id": str(uuid.uuid4()),
                "object": "file",
                "bytes": len(data),
                "created_at": created,
                "filename": f"{job_id}_{what}.jsonl",
                "purpose": "batch",
                "sample_type": "batch_result" if what == "output" else "batch_error",
                "source": "mistral",
                "num_lines": len(lines),
                "mimetype": "application/jsonl",
                "signature": hashlib.sha256(data).hexdigest(),
                "expires_at": None,
                "visibility": "workspace",
            }
        )
        dumped: dict[str, Any] = record.model_dump(mode="json", by_alias=True)
        self.files[dumped["id"]] = dumped
        self.contents[dumped["id"]] = data
        return str(dumped["id"])

    def list_jobs(self, query: Query, commit: bool) -> Reply:
        page, page_size = _int(query, "page", 0), _int(query, "page_size", 100) or 100
        statuses = query.get("status") or []
        model, agent_id = _first(query, "model"), _first(query, "agent_id")
        # One API key here: every job is the caller's, with `created_by_me` or without.
        _bool(query, "created_by_me")
        with self._lock:
            jobs = [
                dict(j)
                for j in self.jobs.values()
                if (not statuses or j["status"] in statuses)
                and (model is None or j["model"] == model)
                and (agent_id is None or j["agent_id"] == agent_id)
            ]
            if _first(query, "order_by") != "created":
                jobs.reverse()
            # Only the jobs the page answers with are read, so only they move on.
            shown = [
                dict(self._advance(j["id"])) if commit else j for j in _page(jobs, page, page_size)
            ]
        return Reply(200, {"object": "list", "data": shown, "total": len(jobs)})

    def get_job(self, job_id: str, commit: bool) -> Reply:
        with self._lock:
            job = self._job(job_id)
            return Reply(200, dict(self._advance(job_id) if commit else job))

    def cancel_job(self, job_id: str, commit: bool) -> Reply:
        with self._lock:
            job = dict(self._job(job_id))
            if job["status"] not in _BATCH_DONE:
                job["status"] = "CANCELLED"
                job["completed_at"] = int(time.time())
            if commit:
                self.jobs[job_id] = job
                self.job_inputs.pop(job_id, None)
        return Reply(200, job)

    def delete_job(self, job_id: str, commit: bool) -> Reply:
        with self._lock:
            self._job(job_id)
            if commit:
                del self.jobs[job_id]
                self.job_inputs.pop(job_id, None)
        return Reply(200, {"id": job_id, "object": "batch", "deleted": True})


def _job_shape(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the SDK's BatchJob model reads and writes it."""
    dumped: dict[str, Any] = (
        sdk_models().BatchJob.model_validate(job).model_dump(mode="json", by_alias=True)
    )
    return dumped


# (resources, params, query, body, content_type, commit) -> Reply
Operation = Callable[[Resources, Mapping[str, str], Query, bytes, str, bool], Reply]


def _lib(p: Mapping[str, str]) -> str:
    return p["library_id"]


def _doc(p: Mapping[str, str]) -> tuple[str, str]:
    return p["library_id"], p["document_id"]


OPERATIONS: dict[str, Operation] = {
    "files.upload": lambda r, p, q, b, ct, c: r.upload_file(ct, b, c),
    "files.list": lambda r, p, q, b, ct, c: r.list_files(q),
    "files.retrieve": lambda r, p, q, b, ct, c: r.retrieve_file(p["file_id"]),
    "files.delete": lambda r, p, q, b, ct, c: r.delete_file(p["file_id"], c),
    "files.download": lambda r, p, q, b, ct, c: r.download_file(p["file_id"]),
    "files.get_signed_url": lambda r, p, q, b, ct, c: r.file_url(p["file_id"]),
    "libraries.list": lambda r, p, q, b, ct, c: r.list_libraries(q),
    "libraries.create": lambda r, p, q, b, ct, c: r.create_library(b, c),
    "libraries.get": lambda r, p, q, b, ct, c: r.get_library(_lib(p)),
    "libraries.update": lambda r, p, q, b, ct, c: r.update_library(_lib(p), b, c),
    "libraries.replace": lambda r, p, q, b, ct, c: r.update_library(_lib(p), b, c),
    "libraries.delete": lambda r, p, q, b, ct, c: r.delete_library(_lib(p), c),
    "libraries.documents.list": lambda r, p, q, b, ct, c: r.list_documents(_lib(p), q),
    "libraries.documents.upload": lambda r, p, q, b, ct, c: r.upload_document(_lib(p), ct, b, c),
    "libraries.documents.get": lambda r, p, q, b, ct, c: r.get_document(*_doc(p)),
    "libraries.documents.update": lambda r, p, q, b, ct, c: r.update_document(*_doc(p), b, c),
    "libraries.documents.replace": lambda r, p, q, b, ct, c: r.update_document(*_doc(p), b, c),
    "libraries.documents.delete": lambda r, p, q, b, ct, c: r.delete_document(*_doc(p), c),
    "libraries.documents.text_content": lambda r, p, q, b, ct, c: r.document_text(*_doc(p)),
    "libraries.documents.status": lambda r, p, q, b, ct, c: r.document_status(*_doc(p)),
    "libraries.documents.get_signed_url": lambda r, p, q, b, ct, c: r.document_url(
        *_doc(p), "documents"
    ),
    "libraries.documents.extracted_text_signed_url": lambda r, p, q, b, ct, c: r.document_url(
        *_doc(p), "extracted"
    ),
    "libraries.documents.reprocess": lambda r, p, q, b, ct, c: r.reprocess(*_doc(p)),
    "libraries.accesses.list": lambda r, p, q, b, ct, c: r.list_shares(_lib(p)),
    "libraries.accesses.update_or_create": lambda r, p, q, b, ct, c: r.share(_lib(p), b, c),
    "libraries.accesses.delete": lambda r, p, q, b, ct, c: r.unshare(_lib(p), b, c),
    "batch.jobs.list": lambda r, p, q, b, ct, c: r.list_jobs(q, c),
    "batch.jobs.create": lambda r, p, q, b, ct, c: r.create_job(b, c),
    "batch.jobs.get": lambda r, p, q, b, ct, c: r.get_job(p["job_id"], c),
    "batch.jobs.cancel": lambda r, p, q, b, ct, c: r.cancel_job(p["job_id"], c),
    "batch.jobs.delete": lambda r, p, q, b, ct, c: r.delete_job(p["job_id"], c),
}
