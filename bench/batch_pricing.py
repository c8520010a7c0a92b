"""`python -m bench.batch_pricing`: the CPU a batch job create spends pricing its input
files at the read cap (`shared.resources.pricing`), the download left out.

8 MiB (`BATCH_ESTIMATE_MAX_BYTES`' default) of chat lines, each a system message and a
~600-character user message with `max_tokens`, split in 256 KiB chunks as a download
arrives, read a line at a time and priced; best of 3 rounds of process CPU time.
"""

from __future__ import annotations

import json
import time

from shared.config import Settings
from shared.resources.pricing import _capped_lines, _line_tokens, _Tally

_CAP = Settings.batch_estimate_max_bytes
_CHUNK = 262_144


def main() -> int:
    settings = Settings(environment="bench", database_url="x", redis_url="x", mistral_api_key="k")
    text = "Summarise in two sentences: " + "lorem ipsum dolor sit amet " * 20
    body = {
        "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text},
        ],
    }
    line = json.dumps({"custom_id": "x", "body": body}).encode() + b"\n"
    data = line * (_CAP // len(line) + 1)
    chunks = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)]
    best = float("inf")
    tokens = lines = 0
    for _ in range(3):
        tally = _Tally()
        started = time.process_time()
        priced = [
            _line_tokens(settings, "chat.complete", None, one)
            for one in _capped_lines(iter(chunks), _CAP, tally)
        ]
        best = min(best, time.process_time() - started)
        tokens, lines = sum(priced), len(priced)
    print(f"{lines} lines ({_CAP} bytes cap): {tokens} tokens, {best * 1000:.0f} ms CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
