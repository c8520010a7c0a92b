"""`python -m bench.token_count`: the reservation's piece count, the regex against
`shared.limits.estimate`'s class-map count, in the same run.

A budgeted chat call counts every string of its body (`estimate.call_reservation`):
a 40-message conversation of English prose (about 38 KB) and one message of 92 KB,
each counted by `len(_PIECE.findall(text))` and by `estimate._pieces`, alternating,
best of 7 rounds. Prints microseconds per body for each, and checks both agree.
"""

from __future__ import annotations

import timeit

from shared.limits import estimate

_PROSE = "The quick brown fox, jumps over 13 lazy dogs! "
_BODIES = {
    "40 messages (38 KB)": [_PROSE * 20] * 40,
    "one message (92 KB)": [_PROSE * 2000],
}


def main() -> int:
    for name, texts in _BODIES.items():
        regex = [len(estimate._PIECE.findall(t)) for t in texts]
        classes = [estimate._pieces(t) for t in texts]
        if regex != classes:
            raise SystemExit(f"{name}: the counts differ: {regex[:3]} {classes[:3]}")
        times: dict[str, list[float]] = {"regex": [], "class map": []}
        for _ in range(7):
            times["regex"].append(
                timeit.timeit(lambda t=texts: [estimate._PIECE.findall(x) for x in t], number=20)
            )
            times["class map"].append(
                timeit.timeit(lambda t=texts: [estimate._pieces(x) for x in t], number=20)
            )
        figures = ", ".join(f"{k} {1e6 * min(v) / 20:.0f} us" for k, v in times.items())
        print(f"{name}: {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
