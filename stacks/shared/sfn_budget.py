"""History-event budgets of Step Functions loops, read from the real state graph.

A standard workflow execution may write at most 25,000 history events; past that AWS fails it,
whatever the definition catches. A loop that polls every few seconds for an hour passes that long
before its own give-up branch runs. `cycle_events` counts what one turn of a loop writes from the
rendered states (their types and resources) and checks that the named states really form that
loop, so the bound follows the definition when it changes; `longest_turn` counts the longest way
round the loop those states belong to (every simple cycle of it, Catch transitions included), and
`total_events` refuses a machine with a loop nobody bounded.

Events per state, as AWS writes them for a standard workflow: a Task writes entered, scheduled,
started, succeeded/failed and exited (5); a callback Task (`.waitForTaskToken`) one more
(submitted); Wait, Choice, Pass, Succeed write entered and exited (2); Fail one.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

HISTORY_EVENT_LIMIT = 25_000
# Kept free for what a budget does not count: Lambda service-exception retries, the failure and
# notification path, an execution's start and end.
HISTORY_EVENT_RESERVE = 1_000
_EVENTS_BY_TYPE = {"Task": 5, "Wait": 2, "Choice": 2, "Pass": 2, "Succeed": 2, "Fail": 1}


def graph_of(start: Any) -> dict[str, Any]:
    """{"States": {name: state JSON}} of every state reachable from `start` (a bound CDK State)."""
    from aws_cdk import Stack
    from aws_cdk import aws_stepfunctions as sfn

    states = sfn.State.find_reachable_states(start, include_error_handlers=True)
    stack = Stack.of(start)
    return {"States": {state.state_id: stack.resolve(state.to_state_json()) for state in states}}


def state_events(state: Mapping[str, Any]) -> int:
    events = _EVENTS_BY_TYPE.get(state["Type"])
    if events is None:
        raise ValueError(f"no event count for {state['Type']} states")
    resource = state.get("Resource")
    if state["Type"] == "Task" and isinstance(resource, str) and resource.endswith(".waitForTaskToken"):
        events += 1
    elif state["Type"] == "Task" and not isinstance(resource, str):
        # Resource is a token (e.g. Fn::Join of the partition): look for the callback suffix in it.
        if ".waitForTaskToken" in str(resource):
            events += 1
    return events


def successors(state: Mapping[str, Any]) -> set[str]:
    """Every state a state can go to: Next, Default, each Choice rule's Next, each Catch's Next."""
    found = {state[key] for key in ("Next", "Default") if key in state}
    found |= {rule["Next"] for rule in state.get("Choices", [])}
    found |= {catcher["Next"] for catcher in state.get("Catch", [])}
    return found


def cycle_events(graph: Mapping[str, Any], cycle: Sequence[str]) -> int:
    """Events one turn of `cycle` writes; ValueError unless each state can go on to the next one
    and the last back to the first (so a renamed or rewired state cannot go unnoticed)."""
    states = graph["States"]
    for here, there in zip(cycle, [*cycle[1:], cycle[0]]):
        if here not in states or there not in successors(states[here]):
            raise ValueError(f"{here} -> {there} is not a transition of the state machine")
    return sum(state_events(states[name]) for name in cycle)


def straight_events(graph: Mapping[str, Any]) -> int:
    """An upper bound on the events of one pass that visits each state at most once."""
    return sum(state_events(state) for state in graph["States"].values())


def loops_of(graph: Mapping[str, Any]) -> list[frozenset[str]]:
    """The machine's loops: each set of states that can be gone round again (a strongly connected
    part of the graph with a cycle in it), Catch transitions included."""
    states = graph["States"]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(name: str) -> None:  # Tarjan's algorithm; state machines are small enough to recurse
        index[name] = low[name] = len(index)
        on_stack.append(name)
        for there in successors(states[name]):
            if there not in index:
                visit(there)
                low[name] = min(low[name], low[there])
            elif there in on_stack:
                low[name] = min(low[name], index[there])
        if low[name] == index[name]:
            part = []
            while True:
                state = on_stack.pop()
                part.append(state)
                if state == name:
                    break
            if len(part) > 1 or name in successors(states[name]):
                found.append(frozenset(part))

    for name in states:
        if name not in index:
            visit(name)
    return found


def longest_turn(graph: Mapping[str, Any], cycles: Sequence[Sequence[str]]) -> int:
    """Events of the longest way once round the loop that `cycles` (the ways a reader knows of, each
    checked by `cycle_events`) belong to: every simple cycle through the loop's states counts, so a
    way round added later (a new retry, a take-over path) is in the bound without being listed."""
    for cycle in cycles:
        cycle_events(graph, cycle)
    states = graph["States"]
    (loop,) = [part for part in loops_of(graph) if cycles[0][0] in part]
    order = sorted(loop)
    longest = 0
    for rank, start in enumerate(order):
        allowed = set(order[rank:])  # each cycle once: from its first state in this order
        path_events = state_events(states[start])
        stack: list[tuple[str, int, frozenset[str]]] = [(start, path_events, frozenset([start]))]
        while stack:
            here, events, seen = stack.pop()
            for there in successors(states[here]) & allowed:
                if there == start:
                    longest = max(longest, events)
                elif there not in seen:
                    stack.append((there, events + state_events(states[there]), seen | {there}))
    return longest


def unbounded_loops(graph: Mapping[str, Any], bounded: Iterable[Sequence[str]]) -> list[list[str]]:
    """The machine's loops that none of the `bounded` cycles goes round (each a sorted state list)."""
    named = {state for cycle in bounded for state in cycle}
    return [sorted(loop) for loop in loops_of(graph) if not loop & named]


def total_events(graph: Mapping[str, Any], loops: Iterable[tuple[Sequence[Sequence[str]], int]]) -> int:
    """Worst case: every state once, plus each loop's longest turn as often as its bound lets it
    turn. ValueError for a loop of the machine that `loops` does not bound."""
    loops = list(loops)
    unbounded = unbounded_loops(graph, [cycle for cycles, _ in loops for cycle in cycles])
    if unbounded:
        raise ValueError(
            f"loop(s) with no bound on their turns (give each a counted give-up and a budget): {unbounded}"
        )
    return straight_events(graph) + sum(longest_turn(graph, cycles) * turns for cycles, turns in loops)


def fits(events: int) -> bool:
    return events <= HISTORY_EVENT_LIMIT - HISTORY_EVENT_RESERVE
