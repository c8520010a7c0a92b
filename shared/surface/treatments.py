"""How the gateway treats each of the SDK's operations: the classification.

Every HTTP operation of the `mistralai` SDK (`sdk_operations.json`, generated from
the SDK by `python -m shared.surface`) falls under exactly one rule below, matched
by its SDK name (`chat.complete`, `beta.libraries.documents.upload`). A test
fails when an operation matches no rule, so an SDK upgrade cannot leave a hole;
docs/sdk-surface.md is generated from the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RULES", "Rule", "Treatment", "rule_for"]


class Treatment(StrEnum):
    """The five ways the gateway treats an SDK operation."""

    # Conversations and agents: answered by the gateway, every turn and agent stored per tenant.
    STORED = "stored"
    # Stateless calls that cost tokens: relayed unchanged, limited, budgeted, metered.
    METERED = "metered"
    # Objects Mistral keeps in the one workspace behind the gateway: an ownership record
    # per object, another tenant's is 404 everywhere, lists show only the caller's.
    OWNED = "owned"
    # Read by every tenant, filtered by the key's allow-lists.
    SHARED_READ = "shared_read"
    # Mistral's organisation administration and what cannot run behind Cloud Run as
    # deployed: 403 `not_exposed`.
    NOT_EXPOSED = "not_exposed"


@dataclass(frozen=True)
class Rule:
    """Operations whose SDK name is `prefix` or starts with `prefix.`, and why."""

    prefix: str
    treatment: Treatment
    reason: str

    def covers(self, name: str) -> bool:
        return name == self.prefix or name.startswith(self.prefix + ".")


_S, _M, _O, _R, _N = (
    Treatment.STORED,
    Treatment.METERED,
    Treatment.OWNED,
    Treatment.SHARED_READ,
    Treatment.NOT_EXPOSED,
)

# The most specific rule wins (longest prefix), so an exception sits beside its namespace.
RULES: tuple[Rule, ...] = (
    Rule("beta.conversations", _S, "conversations: every entry stored in the tenant's database"),
    Rule("beta.agents", _S, "agents: an ownership record and version history per tenant"),
    Rule("chat", _M, "chat completions: tokens reported in `usage`"),
    Rule("fim", _M, "fill-in-the-middle completions: tokens reported in `usage`"),
    Rule("embeddings", _M, "embeddings: tokens reported in `usage`"),
    Rule("agents.complete", _M, "the Agents API's completion: tokens reported in `usage`"),
    Rule("agents.stream", _M, "the Agents API's streamed completion: `usage` in the last event"),
    Rule("classifiers", _M, "classifications and moderations: billed per token"),
    Rule(
        "ocr",
        _M,
        "document OCR: pages (`usage_info.pages_processed`) counted per call and in the usage"
        " API; no tokens, and pages are not budgeted",
    ),
    Rule(
        "audio.transcriptions",
        _M,
        "transcriptions: tokens and seconds of audio (`usage.prompt_audio_seconds`, a"
        " stream's in `transcription.done`) counted; seconds are not budgeted",
    ),
    Rule(
        "audio.speech",
        _M,
        "speech synthesis: answered whole it reports no `usage` (a request of 0 tokens);"
        " streamed, tokens in `speech.audio.done`",
    ),
    Rule("files", _O, "files: stored in Mistral's workspace, owned per tenant"),
    Rule("beta.libraries", _O, "libraries, their documents and accesses: owned per tenant"),
    Rule(
        "batch.jobs",
        _O,
        "Mistral batch jobs: owned per tenant, their files checked, their results the"
        " owner's, priced from their input files at create, their tokens metered when"
        " they end (read through the gateway or swept)",
    ),
    Rule("models.list", _R, "the models list, filtered by the key's `allowed_models`"),
    Rule(
        "models.retrieve",
        _R,
        "one model; 403 `forbidden` when the key's `allowed_models` excludes it, as for a turn",
    ),
    Rule("models", _N, "fine-tuned model administration (update, archive, delete)"),
    Rule(
        "responses",
        _N,
        "the Responses API keeps responses Mistral-side, reachable by `previous_response_id`;"
        " the gateway holds no ownership record for them yet",
    ),
    Rule("realtime", _N, "realtime sessions are websockets, which Cloud Run functions do not hold"),
    Rule("audio.agents", _N, "voice agents: realtime sessions (websockets)"),
    Rule("audio.sessions", _N, "realtime voice sessions (websockets)"),
    Rule("audio.voices", _N, "custom voices: workspace-wide configuration"),
    Rule("beta.connectors", _N, "connectors hold the organisation's third-party credentials"),
    Rule("beta.context", _N, "managed search indexes: workspace-wide configuration"),
    Rule("beta.rag", _N, "RAG deployments: workspace-wide configuration"),
    Rule("beta.observability", _N, "Mistral's observability of the whole workspace"),
    Rule("beta.prompts", _N, "the workspace's prompt registry"),
    Rule("beta.skills", _N, "the workspace's skills registry"),
    Rule("beta.triggers", _N, "workspace triggers that call back outside the gateway"),
    Rule("beta.webhooks", _N, "organisation webhooks"),
    Rule("beta.users", _N, "organisation administration: users"),
    Rule("beta.service_accounts", _N, "organisation administration: service accounts"),
    Rule("workflows", _N, "Mistral workflows: workspace-wide orchestration"),
    Rule("events", _N, "workflow event streams: workspace-wide"),
)


def rule_for(name: str) -> Rule | None:
    """The most specific rule covering an SDK operation name, or None if none does."""
    covering = [rule for rule in RULES if rule.covers(name)]
    return max(covering, key=lambda rule: len(rule.prefix)) if covering else None
