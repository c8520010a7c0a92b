"""The library every gateway function imports, one package per concern: the HTTP edge
(`http`), conversations, agents, tenancy, limits, the Mistral client (`mistral`), the
database (`db`), observability, the API document (`openapi`), batches and the history
reads (`reads`); beside them config, the container, errors and a few small helpers."""
