"""SingleFlight: concurrent callers of one key share one lookup, and nothing is kept."""

from __future__ import annotations

import asyncio

import pytest

from kitchen.single_flight import SingleFlight


def test_callers_of_one_key_share_one_lookup_and_the_next_call_looks_again() -> None:
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        flight: SingleFlight[str] = SingleFlight()
        looked: list[str] = []
        release = asyncio.Event()

        async def lookup(key: str) -> str:
            looked.append(key)
            await release.wait()
            return f"answer for {key}"

        waiting = [asyncio.ensure_future(flight.do("a", lambda: lookup("a"))) for _ in range(20)]
        other = asyncio.ensure_future(flight.do("b", lambda: lookup("b")))
        await asyncio.sleep(0.01)  # every caller is waiting now
        release.set()
        answers = [*await asyncio.gather(*waiting), await other]
        after = await flight.do("a", lambda: lookup("a"))  # nothing kept: looked up again
        return looked, answers, [after]

    looked, answers, after = asyncio.run(scenario())
    assert looked == ["a", "b", "a"]
    assert answers == ["answer for a"] * 20 + ["answer for b"]
    assert after == ["answer for a"]


def test_an_error_reaches_every_waiter_and_the_next_call_looks_again() -> None:
    async def scenario() -> tuple[list[BaseException | str], str, int]:
        flight: SingleFlight[str] = SingleFlight()
        calls = 0

        async def failing() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            raise ConnectionError("database unreachable")

        async def working() -> str:
            nonlocal calls
            calls += 1
            return "found"

        outcomes = await asyncio.gather(
            *(flight.do("k", failing) for _ in range(5)), return_exceptions=True
        )
        return list(outcomes), await flight.do("k", working), calls

    outcomes, later, calls = asyncio.run(scenario())
    assert all(isinstance(o, ConnectionError) for o in outcomes) and len(outcomes) == 5
    assert (later, calls) == ("found", 2)


def test_a_caller_that_gives_up_does_not_cancel_the_others_lookup() -> None:
    async def scenario() -> str:
        flight: SingleFlight[str] = SingleFlight()

        async def slow() -> str:
            await asyncio.sleep(0.05)
            return "found"

        leaving = asyncio.ensure_future(flight.do("k", slow))
        staying = asyncio.ensure_future(flight.do("k", slow))
        await asyncio.sleep(0.01)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    assert asyncio.run(scenario()) == "found"
