"""Tenant-owned Mistral resources (files, libraries and their documents and accesses,
batch jobs): ownership records, references checked, lists scoped to the tenant.

`check_owned(db, tenant, kind, ids)` is the one check for a reference to such an object
(a library in a `document_library` tool, a file in a batch job or an OCR call).
"""

from shared.resources.idempotent import IDEMPOTENT_CREATES, Created, create_once, upload_once
from shared.resources.operations import (
    ListQuery,
    Upload,
    batch_job_action,
    create_batch_job,
    create_library,
    delete,
    download_file,
    list_batch_jobs,
    list_documents,
    list_files,
    list_libraries,
    owned_call,
    parse_list_query,
    share_library,
    upload_document,
    upload_file,
)
from shared.resources.pricing import BatchJobRequest, batch_job_estimate, check_batch_job
from shared.resources.records import KINDS, Kind, check_owned, library_ids_in_tools

__all__ = [
    "IDEMPOTENT_CREATES",
    "KINDS",
    "Created",
    "BatchJobRequest",
    "batch_job_estimate",
    "check_batch_job",
    "Kind",
    "ListQuery",
    "Upload",
    "batch_job_action",
    "check_owned",
    "create_batch_job",
    "create_library",
    "create_once",
    "delete",
    "download_file",
    "library_ids_in_tools",
    "list_batch_jobs",
    "list_documents",
    "list_files",
    "list_libraries",
    "owned_call",
    "parse_list_query",
    "share_library",
    "upload_document",
    "upload_file",
    "upload_once",
]
