"""Usage: requests, tokens in and out, OCR pages and audio seconds, per key, agent, model
and day.

Figures are sums over `usage_events`, the row the write path appends for every
request that reached Mistral; nothing is counted on the hot path. Days are UTC.

    GET /gateway/v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD&group_by=key,agent,model,day&owner_id=

    from, to   inclusive UTC dates; default the 30 days ending today; at most 366 days
    group_by   any of key, agent, model, operation, day, hour, comma-separated (default
               day; empty = totals). `operation` is the route's operation name:
               conversations.start, chat.complete, embeddings.create, ...
    owner_id   another tenant: an operator only; anyone else gets 404 (as for a missing
               tenant), and so does an operator naming a tenant that does not exist

    -> 200 {"object": "gateway.usage", "owner_id", "from", "to", "group_by": [...],
            "totals": Counts,
            "data": [{<each grouped dimension: "key_id" | "agent_id" | "model" | "operation"
                       | "day" | "hour">,
                      **Counts}, ...]}
    Counts: {"requests", "failed_requests", "prompt_tokens", "completion_tokens",
             "total_tokens", "pages", "audio_seconds"}

Rows are ordered by day, hour, then key, agent, model and operation. `failed_requests` counts the
requests Mistral answered with an error status. `pages` are the pages OCR processed
(Mistral's `usage_info.pages_processed`) and `audio_seconds` the seconds of audio
transcribed (its `usage.prompt_audio_seconds`): units Mistral bills that are not tokens,
0 for the calls that report neither. They are reported here, not budgeted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.db import Pool
from shared.errors import ValidationFailed, field_error
from shared.tenancy import tenants
from shared.tenancy.auth import tenant_scope
from shared.tenancy.keys import Principal

__all__ = ["DIMENSIONS", "MAX_DAYS", "UsageQuery", "parse_query", "usage"]

# group_by name -> the field it adds to each row.
DIMENSIONS: Mapping[str, str] = {
    "key": "key_id",
    "agent": "agent_id",
    "model": "model",
    "operation": "operation",
    "day": "day",
    "hour": "hour",
}
MAX_DAYS = 366
_DEFAULT_DAYS = 30
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COUNTS = (
    "requests",
    "failed_requests",
    "prompt_tokens",
    "completion_tokens",
    "pages",
    "audio_seconds",
)


@dataclass(frozen=True)
class UsageQuery:
    owner_id: str
    first_day: date
    last_day: date
    group_by: tuple[str, ...]


def _date(raw: str, name: str) -> date:
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        msg = "Input should be a valid date in the format YYYY-MM-DD"
        raise ValidationFailed(
            [field_error(("query", name), msg, "date_from_datetime_parsing")]
        ) from None


def parse_query(
    query: Mapping[str, str], *, caller: Principal, today: date | None = None
) -> UsageQuery:
    """The validated query; 404 when another tenant's usage is asked without the right."""
    today = today or datetime.now(UTC).date()
    raw_from, raw_to = query.get("from"), query.get("to")
    last = _date(raw_to, "to") if raw_to else None
    first = _date(raw_from, "from") if raw_from else None
    if last is None:
        last = today if first is None else max(today, first)
    if first is None:
        first = last - timedelta(days=_DEFAULT_DAYS - 1)
    if first > last:
        msg = "from must not be after to"
        raise ValidationFailed([field_error(("query", "from"), msg, "date_order")])
    if (last - first).days + 1 > MAX_DAYS:
        msg = f"the range may span at most {MAX_DAYS} days"
        raise ValidationFailed([field_error(("query", "to"), msg, "range")])

    raw_group = query.get("group_by")
    names = ["day"] if raw_group is None else [n.strip() for n in raw_group.split(",") if n.strip()]
    unknown = [n for n in names if n not in DIMENSIONS]
    if unknown:
        msg = f"unknown group_by {', '.join(unknown)}; use any of {', '.join(DIMENSIONS)}"
        raise ValidationFailed([field_error(("query", "group_by"), msg, "enum")])

    wanted = tenant_scope(caller, query.get("owner_id"))
    ordered = tuple(n for n in DIMENSIONS if n in names)
    return UsageQuery(wanted, first, last, ordered)


# Grouping is chosen by parameters, so the statement itself never changes.
_USAGE_SQL = """
SELECT CASE WHEN CAST(:by_key AS boolean) THEN api_key_id END AS key_id,
       CASE WHEN CAST(:by_agent AS boolean) THEN agent_id END AS agent_id,
       CASE WHEN CAST(:by_model AS boolean) THEN model END AS model,
       CASE WHEN CAST(:by_day AS boolean)
            THEN CAST(timezone('UTC', created_at) AS date) END AS day,
       CASE WHEN CAST(:by_hour AS boolean)
            THEN date_trunc('hour', timezone('UTC', created_at)) END AS hour,
       CASE WHEN CAST(:by_operation AS boolean) THEN operation END AS operation,
       count(*) AS requests,
       count(*) FILTER (WHERE status >= 400) AS failed_requests,
       CAST(coalesce(sum(prompt_tokens), 0) AS bigint) AS prompt_tokens,
       CAST(coalesce(sum(completion_tokens), 0) AS bigint) AS completion_tokens,
       CAST(coalesce(sum(pages), 0) AS bigint) AS pages,
       CAST(coalesce(sum(audio_seconds), 0) AS bigint) AS audio_seconds
FROM usage_events
WHERE owner_id = :owner AND created_at >= :start AND created_at < :end
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 4 NULLS FIRST, 5 NULLS FIRST, 1 NULLS FIRST, 2 NULLS FIRST, 3 NULLS FIRST,
         6 NULLS FIRST
"""


def _counts(values: Mapping[str, Any]) -> dict[str, int]:
    counts = {name: int(values[name]) for name in _COUNTS}
    counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
    return counts


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):  # an hour, as UTC (the column is a naive UTC time)
        return value.strftime("%Y-%m-%dT%H:00:00Z")
    return value.isoformat() if isinstance(value, date) else value


def usage(pool: Pool, query: UsageQuery) -> dict[str, Any]:
    """The tenant's usage for the days asked, grouped as asked, with totals."""
    start = datetime.combine(query.first_day, time(), UTC)
    end = datetime.combine(query.last_day + timedelta(days=1), time(), UTC)
    with pool.connection() as conn:
        tenants.require(conn, query.owner_id)
        rows = conn.all(
            _USAGE_SQL,
            owner=query.owner_id,
            start=start,
            end=end,
            **{f"by_{name}": name in query.group_by for name in DIMENSIONS},
        )
    data = []
    for row in rows:
        item: dict[str, Any] = {}
        for name in query.group_by:
            field = DIMENSIONS[name]
            value = row[field]
            item[field] = _wire(value)
        data.append({**item, **_counts(row)})
    totals = _counts({name: sum(int(r[name]) for r in rows) for name in _COUNTS})
    return {
        "object": "gateway.usage",
        "owner_id": query.owner_id,
        "from": query.first_day.isoformat(),
        "to": query.last_day.isoformat(),
        "group_by": list(query.group_by),
        "totals": totals,
        "data": data,
    }


def openapi_schemas() -> dict[str, Any]:
    """This module's wire shapes as JSON Schema, by the OpenAPI document's component name
    (only the document calls it)."""
    from shared.shapes import STRING, Json, const, enum, nullable, obj

    counts: Json = {
        name: {"type": "integer", "minimum": 0}
        for name in (
            "requests",
            "failed_requests",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "pages",
            "audio_seconds",
        )
    }
    usage_report = obj(
        {
            "object": const("gateway.usage"),
            "owner_id": STRING,
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "group_by": {"type": "array", "items": enum(*DIMENSIONS)},
            "totals": obj(counts, tuple(counts)),
            "data": {
                "type": "array",
                "items": obj(
                    {
                        **counts,
                        "key_id": nullable(STRING),
                        "agent_id": nullable(STRING),
                        "model": nullable(STRING),
                        "operation": nullable(STRING),
                        "day": {"type": "string", "format": "date"},
                        "hour": {"type": "string", "format": "date-time"},
                    },
                    tuple(counts),
                ),
            },
        },
        ("object", "owner_id", "from", "to", "group_by", "totals", "data"),
        description=(
            "Requests, tokens, OCR pages and audio seconds, summed per the dimensions of"
            " `group_by` (UTC days)."
        ),
    )

    return {
        "Usage": usage_report,
    }
