"""The stand-in keeps its state (conversations, agents, files, libraries, batch jobs) across a
restart when given a state file."""

from __future__ import annotations

from pathlib import Path

from mistralai.client import Mistral

from devstack.standin import StandIn

MODEL = "mistral-small-latest"
LINE = b'{"custom_id": "1", "body": {"input": ["kept"]}}\n'


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


def test_files_libraries_documents_and_batch_jobs_survive_a_restart(tmp_path: Path) -> None:
    """A file's bytes, a library with a document and a share, a batch job: all still there."""
    state = tmp_path / "standin.json"
    with StandIn(state_file=state) as first:
        sdk = _sdk(first)
        file = sdk.files.upload(file={"file_name": "f.jsonl", "content": LINE}, purpose="batch")
        lib = sdk.beta.libraries.create(name="kept")
        doc = sdk.beta.libraries.documents.upload(
            library_id=lib.id, file={"file_name": "d.txt", "content": b"words"}
        )
        sdk.beta.libraries.accesses.update_or_create(
            library_id=lib.id, level="Viewer", share_with_uuid="u", share_with_type="User"
        )
        job = sdk.batch.jobs.create(input_files=[file.id], endpoint="/v1/embeddings", model=MODEL)
    with StandIn(state_file=state) as second:
        sdk = _sdk(second)
        assert sdk.files.download(file_id=file.id).read() == LINE
        assert sdk.beta.libraries.get(library_id=lib.id).nb_documents == 1
        text = sdk.beta.libraries.documents.text_content(library_id=lib.id, document_id=doc.id)
        assert text.text == "words"
        assert len(sdk.beta.libraries.accesses.list(library_id=lib.id).data) == 1
        assert sdk.batch.jobs.get(job_id=job.id).input_files == [file.id]
        # Its lines were kept too: the next read runs them.
        assert sdk.batch.jobs.get(job_id=job.id).succeeded_requests == 1
