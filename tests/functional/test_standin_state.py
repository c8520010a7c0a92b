"""The stand-in keeps its conversations and agents across a restart when given a state file."""

from __future__ import annotations

from pathlib import Path

from mistralai.client import Mistral

from devstack.standin import StandIn

MODEL = "mistral-small-latest"


def _sdk(standin: StandIn) -> Mistral:
    return Mistral(api_key="k", server_url=standin.url)


def test_conversations_agents_versions_and_aliases_survive_a_restart(tmp_path: Path) -> None:
    """Everything the SDK made is there, unchanged, after stop and start on the same file."""
    state = tmp_path / "standin.json"
    with StandIn(state_file=state) as first:
        sdk = _sdk(first)
        agent = sdk.beta.agents.create(model=MODEL, name="kept")
        sdk.beta.agents.update(agent_id=agent.id, instructions="v1")
        sdk.beta.agents.create_version_alias(agent_id=agent.id, alias="stable", version=0)
        started = sdk.beta.conversations.start(agent_id=agent.id, inputs="hello")
        before = (
            sdk.beta.agents.get(agent_id=agent.id).model_dump(),
            sdk.beta.agents.list_version_aliases(agent_id=agent.id),
            sdk.beta.conversations.get_history(conversation_id=started.conversation_id),
        )
    assert state.exists()
    with StandIn(state_file=state) as second:
        sdk = _sdk(second)
        after = (
            sdk.beta.agents.get(agent_id=agent.id).model_dump(),
            sdk.beta.agents.list_version_aliases(agent_id=agent.id),
            sdk.beta.conversations.get_history(conversation_id=started.conversation_id),
        )
        assert after == before
        appended = sdk.beta.conversations.append(
            conversation_id=started.conversation_id, inputs="again"
        )
        assert appended.outputs
        newer = sdk.beta.agents.create(model=MODEL, name="newer")
        listed = [a.id for a in sdk.beta.agents.list_pages().result.data]
    # The restored sequence continues: the newer agent lists first, the kept one after it.
    assert listed == [newer.id, agent.id]
