"""Property tests: random callback/errback chains checked against a reference model of the
two-chain rule, and DeferredList/gatherResults against a direct computation."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.defer import (
    Deferred,
    DeferredList,
    FirstError,
    fail,
    gatherResults,
    succeed,
)
from framework.failure import Failure


class Boom(Exception):
    """The exception the generated callbacks raise; ``args[0]`` is a tag."""


# An action is what one callback or errback does with what it is given:
#   ("return", v)          return v
#   ("raise", t)           raise Boom(t)
#   ("failure", t)         return Failure(Boom(t))
#   ("fired", v)           return succeed(v)
#   ("failed", t)          return fail(Boom(t))
#   ("pending", v)         return an unfired Deferred, fired with v later
#   ("pending_fail", t)    return an unfired Deferred, errbacked with Boom(t) later
values = st.integers(min_value=0, max_value=99)
actions = st.one_of(
    st.tuples(st.just("return"), values),
    st.tuples(st.just("raise"), values),
    st.tuples(st.just("failure"), values),
    st.tuples(st.just("fired"), values),
    st.tuples(st.just("failed"), values),
    st.tuples(st.just("pending"), values),
    st.tuples(st.just("pending_fail"), values),
)
# A stage: which method adds it and the action(s) of its callback / errback.
stages = st.one_of(
    st.tuples(st.just("addCallback"), actions),
    st.tuples(st.just("addErrback"), actions),
    st.tuples(st.just("addBoth"), actions),
    st.tuples(st.just("addCallbacks"), actions, actions),
)
firings = st.one_of(st.tuples(st.just("callback"), values), st.tuples(st.just("errback"), values))

State = tuple[str, int]  # ("ok", value) or ("fail", tag)


def outcome_of(action: tuple[str, int]) -> State:
    kind, v = action
    if kind in ("return", "fired", "pending"):
        return ("ok", v)
    return ("fail", v)


def model(stage_list: list[tuple[Any, ...]], start: State) -> tuple[list[tuple[int, str, State]], State]:
    """The two-chain rule: each stage runs its callback on success, its errback on failure;
    a side that was not given passes the state through unchanged."""
    log: list[tuple[int, str, State]] = []
    state = start
    for i, stage in enumerate(stage_list):
        method = stage[0]
        ok = state[0] == "ok"
        if method == "addCallback":
            action = stage[1] if ok else None
        elif method == "addErrback":
            action = None if ok else stage[1]
        elif method == "addBoth":
            action = stage[1]
        else:
            action = stage[1] if ok else stage[2]
        if action is None:
            continue
        log.append((i, "cb" if ok else "eb", state))
        state = outcome_of(action)
    return log, state


class Runner:
    """Builds real callbacks for the generated actions and records what they receive."""

    def __init__(self) -> None:
        self.log: list[tuple[int, str, State]] = []
        self.pending: list[tuple[Deferred[Any], tuple[str, int]]] = []

    @staticmethod
    def state_of(value: Any) -> State:
        if isinstance(value, Failure):
            assert isinstance(value.value, Boom), value.getTraceback()
            return ("fail", value.value.args[0])
        return ("ok", value)

    def make(self, index: int, side: str, action: tuple[str, int]) -> Any:
        kind, v = action

        def f(value: Any) -> Any:
            self.log.append((index, side, self.state_of(value)))
            if kind == "return":
                return v
            if kind == "raise":
                raise Boom(v)
            if kind == "failure":
                return Failure(Boom(v))
            if kind == "fired":
                return succeed(v)
            if kind == "failed":
                return fail(Boom(v))
            d: Deferred[Any] = Deferred()
            self.pending.append((d, action))
            return d

        return f

    def add(self, d: Deferred[Any], index: int, stage: tuple[Any, ...]) -> None:
        method = stage[0]
        if method == "addCallback":
            d.addCallback(self.make(index, "cb", stage[1]))
        elif method == "addErrback":
            d.addErrback(self.make(index, "eb", stage[1]))
        elif method == "addBoth":
            both = self.make(index, "?", stage[1])
            d.addBoth(lambda r: both(r))
        else:
            d.addCallbacks(self.make(index, "cb", stage[1]), self.make(index, "eb", stage[2]))

    def fire_pending(self) -> None:
        for _ in range(10_000):
            if not self.pending:
                return
            d, (kind, v) = self.pending.pop(0)
            if kind == "pending":
                d.callback(v)
            else:
                d.errback(Boom(v))
        raise AssertionError("pending Deferreds did not settle")


def fix_both_sides(log: list[tuple[int, str, State]]) -> list[tuple[int, str, State]]:
    # addBoth callbacks cannot know their side; derive it from what they received.
    return [(i, ("cb" if s[0] == "ok" else "eb") if side == "?" else side, s) for i, side, s in log]


def final_state(d: Deferred[Any]) -> State:
    out: list[Any] = []
    d.addBoth(out.append)
    assert len(out) == 1, "the Deferred did not fire"
    return Runner.state_of(out[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(stages, max_size=12), firings, st.integers(min_value=0, max_value=12))
def test_chain_matches_model(stage_list: list[tuple[Any, ...]], firing: tuple[str, int], fire_at: int) -> None:
    """Whenever the Deferred is fired relative to the additions, the chain follows the model."""
    fire_at = min(fire_at, len(stage_list))
    runner = Runner()
    d: Deferred[Any] = Deferred()
    for i, stage in enumerate(stage_list):
        if i == fire_at:
            fire(d, firing)
        runner.add(d, i, stage)
        runner.fire_pending()
    if fire_at == len(stage_list):
        fire(d, firing)
    runner.fire_pending()
    start: State = ("ok", firing[1]) if firing[0] == "callback" else ("fail", firing[1])
    expected_log, expected_state = model(stage_list, start)
    assert fix_both_sides(runner.log) == expected_log
    assert final_state(d) == expected_state


def fire(d: Deferred[Any], firing: tuple[str, int]) -> None:
    if firing[0] == "callback":
        d.callback(firing[1])
    else:
        d.errback(Boom(firing[1]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(stages, max_size=5), min_size=1, max_size=6), firings)
def test_chainDeferred_matches_model(per_deferred: list[list[tuple[Any, ...]]], firing: tuple[str, int]) -> None:
    """Deferreds linked with chainDeferred: each target starts from its source's state at the
    link, and the source continues with None."""
    runner = Runner()
    ds: list[Deferred[Any]] = [Deferred() for _ in per_deferred]
    offset = 0
    offsets = []
    for d, stage_list in zip(ds, per_deferred):
        offsets.append(offset)
        for j, stage in enumerate(stage_list):
            runner.add(d, offset + j, stage)
        offset += len(stage_list) + 1
    for a, b in zip(ds, ds[1:]):
        a.chainDeferred(b)
    fire(ds[0], firing)
    runner.fire_pending()

    state: State = ("ok", firing[1]) if firing[0] == "callback" else ("fail", firing[1])
    expected_log: list[tuple[int, str, State]] = []
    for k, stage_list in enumerate(per_deferred):
        log, state = model(stage_list, state)
        expected_log.extend((i + offsets[k], side, s) for i, side, s in log)
    assert sorted(fix_both_sides(runner.log)) == sorted(expected_log)
    assert final_state(ds[-1]) == state
    for d in ds[:-1]:
        assert final_state(d) == ("ok", None)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), values), max_size=8),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_deferred_list_and_gather(outcomes: list[tuple[bool, int]], rnd: Any, consume: bool) -> None:
    ds: list[Deferred[Any]] = [Deferred() for _ in outcomes]
    gathered = gatherResults(ds)  # added first: sees the failures and passes them on
    dl = DeferredList(ds, consumeErrors=consume)
    order = list(range(len(ds)))
    rnd.shuffle(order)
    first_failure = None
    for i in order:
        ok, v = outcomes[i]
        if ok:
            ds[i].callback(v)
        else:
            ds[i].errback(Boom(v))
            if first_failure is None:
                first_failure = i
    results: list[Any] = []
    dl.addCallback(results.append)
    if consume:
        # consumeErrors: every listed Deferred's chain ends in success (failures replaced)
        assert all(final_state(d)[0] == "ok" for d in ds)
    assert len(results) == 1
    assert [(s, Runner.state_of(r)) for s, r in results[0]] == [
        (ok, ("ok", v) if ok else ("fail", v)) for ok, v in outcomes
    ]
    got: list[Any] = []
    gathered.addBoth(got.append)
    if first_failure is None:
        assert got == [[v for _, v in outcomes]]
    else:
        assert isinstance(got[0], Failure) and got[0].check(FirstError)
        assert isinstance(got[0].value, FirstError)
        assert got[0].value.index == first_failure
