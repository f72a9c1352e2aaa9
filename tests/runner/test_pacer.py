"""A runner's periodic chores: each due at most once per its period, on the runner's clock."""

from __future__ import annotations

from batches.runner.pacer import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_chore_is_due_at_its_first_look_and_then_once_per_period() -> None:
    clock = Clock()
    pacer = Pacer(clock)

    first, again = pacer.every("renew", 5.0), pacer.every("renew", 5.0)
    clock.now += 4.9
    early = pacer.every("renew", 5.0)
    clock.now += 0.1
    due = pacer.every("renew", 5.0)

    assert (first, again, early, due) == (True, False, False, True)


def test_each_chore_keeps_its_own_time() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    pacer.every("renew", 5.0)
    clock.now += 1.0

    assert pacer.every("slot", 1.0)
    assert not pacer.every("renew", 5.0)


def test_a_chore_made_due_now_is_due_at_its_next_look_only() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    pacer.every("renew", 5.0)

    pacer.due_now("renew")

    assert pacer.every("renew", 5.0)
    assert not pacer.every("renew", 5.0)


def test_a_look_that_is_not_due_does_not_push_the_chore_back() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    pacer.every("poll", 2.0)
    clock.now += 1.0
    pacer.every("poll", 2.0)
    clock.now += 1.0

    assert pacer.every("poll", 2.0)


def test_the_next_time_is_counted_from_the_look_that_found_it_due() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    pacer.every("poll", 2.0)
    clock.now += 3.0
    pacer.every("poll", 2.0)  # late: the next one is 2 s from now, not 1 s

    clock.now += 1.5

    assert not pacer.every("poll", 2.0)
