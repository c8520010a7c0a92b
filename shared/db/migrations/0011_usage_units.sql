-- OCR pages and audio seconds in usage (issue 19's notes): Mistral bills OCR per page
-- (`usage_info.pages_processed`) and audio transcription per second of audio
-- (`usage.prompt_audio_seconds`), neither of which is a token. Each usage event carries
-- what Mistral reported, 0 for calls that report neither; the usage API sums them as it
-- sums tokens. They are reported, not budgeted: the token budget is unchanged.
ALTER TABLE usage_events
    ADD COLUMN pages integer NOT NULL DEFAULT 0,
    ADD COLUMN audio_seconds integer NOT NULL DEFAULT 0;
