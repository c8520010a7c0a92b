-- Which API key created each tenant-owned Mistral object (issue 19's list filters):
-- `GET /v1/batch/jobs?created_by_me=true` lists the jobs the calling key created, as
-- Mistral lists those its calling user created. A key keeps its id when rotated, so its
-- objects stay its own. Rows written before this migration have no creator (NULL): they
-- are listed without the filter and never under `created_by_me=true`.
ALTER TABLE owned_resources ADD COLUMN created_by text;
