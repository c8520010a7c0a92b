"""A local stand-in for Mistral's Conversations & Agents API, faithful to the wire contract the
official SDK speaks (shared/reference/mistral-wire-contract.md), and for the stateless calls the
gateway meters (chat, fim, agents completions, embeddings, classifiers, OCR, audio: see
`_completions`), with fault injection and call counting for gateway tests and benchmarks.

    with StandIn() as standin:
        client = Mistral(api_key="test", server_url=standin.url)

Files, libraries and batch jobs: see `_resources`. A batch job runs at its reads, never on
a clock: QUEUED when created, RUNNING at its first read, ended at its second, with its
output and error files in the files store (`_batch`).

Fault syntax and what each fault stores: see `_faults`. Control API: see `_control`.
"""

from ._faults import Fault, parse_fault
from ._routes import OPERATIONS
from ._server import StandIn

__all__ = ["OPERATIONS", "Fault", "StandIn", "parse_fault"]
