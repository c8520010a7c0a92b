"""The models Mistral serves, as a key may see them (`models.list`, `models.retrieve`).

Shared read-only: every tenant reads the one list Mistral keeps for the workspace
behind the gateway, asked of Mistral on each call (nothing is stored), filtered by
the key's `allowed_models` (empty: every model). A list shows the entries whose `id`
the key may name; a retrieve of a model outside the list is refused before Mistral
is asked, as a turn naming it is (403 `forbidden`, `param` `allowed_models`, see
`shared.tenancy.auth.check_allow_lists`), not hidden as a 404: which models Mistral serves is
no secret, and the answer says which setting refused it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from shared.errors import UpstreamUnavailable
from shared.mistral import MistralClient, Retry, UpstreamResponse
from shared.tenancy.auth import check_allow_lists
from shared.tenancy.keys import Principal

__all__ = ["list_models", "retrieve_model"]

# A path segment's own characters (RFC 3986 pchar): a fine-tuned model's id has colons.
_SEGMENT_SAFE = ":@!$&'()*+,;="


def list_models(
    client: MistralClient, principal: Principal, query_string: str = ""
) -> UpstreamResponse | dict[str, Any]:
    """Mistral's list as it came, or, for a key with `allowed_models`, only those entries."""
    path = "/v1/models" + (f"?{query_string}" if query_string else "")
    answer = client.call("models.list", "GET", path, retry=Retry.IDEMPOTENT)
    if not principal.allowed_models:
        return answer
    try:
        listing = json.loads(answer.body)
    except ValueError:
        listing = None
    if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
        raise UpstreamUnavailable("Mistral's models list is not a list")
    allowed = set(principal.allowed_models)
    data = [
        card for card in listing["data"] if isinstance(card, dict) and card.get("id") in allowed
    ]
    return {**listing, "data": data}


def retrieve_model(client: MistralClient, principal: Principal, model_id: str) -> UpstreamResponse:
    """Mistral's card for one model (its 404 as it came), once the key may name it."""
    check_allow_lists(principal, None, model_id)
    path = "/v1/models/" + quote(model_id, safe=_SEGMENT_SAFE)
    return client.call("models.retrieve", "GET", path, retry=Retry.IDEMPOTENT)
