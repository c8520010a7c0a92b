"""The SDK's surface: every HTTP operation of `mistralai`, and how the gateway treats it.

`sdk_operations.json` lists the SDK's operations (method, path, operation id, the
pydantic models sent and parsed), generated from the installed SDK by
`python -m shared.surface` and checked equal to it by a test. `treatments` says
how the gateway treats each one. `not_exposed(method, path)` is what the router
and the functions answer for a Mistral path the gateway deliberately does not
serve: the SDK operation's name, for a 403 `not_exposed`, instead of a bare 404.
Nothing here imports the SDK at run time; the JSON is read on first use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from shared.surface.treatments import Treatment, rule_for

__all__ = ["OPERATIONS_FILE", "SdkOperation", "Treatment", "not_exposed", "operations"]

OPERATIONS_FILE = Path(__file__).with_name("sdk_operations.json")

_PARAM = re.compile(r"\{[A-Za-z_]+\}")


@dataclass(frozen=True)
class SdkOperation:
    """One HTTP operation of the SDK and the gateway's treatment of it."""

    name: str
    method: str
    path: str
    variant: str | None
    operation_id: str | None
    request_model: str | None
    request_kind: str | None
    parameters_model: str | None
    response_model: str | None
    # The answer is a JSON array of `response_model`.
    response_list: bool
    success_status: int
    # The SDK parses a JSON answer as `str` or `Any`, not as a model.
    response_scalar: str | None
    streams: bool
    # The `data:` of the stream's last event, which is no JSON (`[DONE]`), if it has one.
    stream_sentinel: str | None
    aliases: tuple[str, ...]
    treatment: Treatment

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + _PARAM.sub(r"[^/]+", self.path) + "$")


@cache
def operations() -> tuple[SdkOperation, ...]:
    """The SDK's operations, each with its treatment (KeyError names an unclassified one)."""
    document = json.loads(OPERATIONS_FILE.read_text())
    found = []
    for raw in document["operations"]:
        rule = rule_for(raw["name"])
        if rule is None:
            raise KeyError(f"SDK operation {raw['name']} has no rule in shared.surface.treatments")
        found.append(
            SdkOperation(
                **{**raw, "aliases": tuple(raw.get("aliases", ()))}, treatment=rule.treatment
            )
        )
    return tuple(found)


@cache
def _not_exposed_patterns() -> tuple[tuple[str, re.Pattern[str], str], ...]:
    served = {
        (op.method, op.path) for op in operations() if op.treatment is not Treatment.NOT_EXPOSED
    }
    hidden = [
        op
        for op in operations()
        if op.treatment is Treatment.NOT_EXPOSED and (op.method, op.path) not in served
    ]
    # A literal segment before a parameter at the same place, as routers match:
    # `/v1/workflows/runs` is workflows.runs.list_runs, not workflows.get_workflow.
    hidden.sort(key=lambda op: [bool(_PARAM.fullmatch(part)) for part in op.path.split("/")])
    return tuple((op.method, op.pattern, op.name) for op in hidden)


def not_exposed(method: str, path: str) -> str | None:
    """The SDK operation a request names if the gateway does not expose it, else None."""
    method = method.upper()
    for verb, pattern, name in _not_exposed_patterns():
        if verb == method and pattern.match(path):
            return name
    return None
