"""Agents: each tenant's own, kept at Mistral and mirrored in the database (`operations`)."""

from shared.agents.operations import (
    AgentFilters,
    create_agent,
    delete_agent,
    get_agent,
    list_agent_pages,
    list_agents,
    parse_create,
    parse_filters,
    parse_update,
    relay,
    switch_version,
    update_agent,
)

__all__ = [
    "AgentFilters",
    "create_agent",
    "delete_agent",
    "get_agent",
    "list_agent_pages",
    "list_agents",
    "parse_create",
    "parse_filters",
    "parse_update",
    "relay",
    "switch_version",
    "update_agent",
]
