"""How long the manual order's keys grow (issue #13; results in specs/ordering.md).

Uses the fractional-indexing library directly, as the API does (services/ordering.py),
without the API's rebalancing, to show what it guards against:

    backend/.venv/bin/python bench/order_keys.py
"""

import random

from fractional_indexing import generate_key_between, generate_n_keys_between

MOVES = 1_000
RANDOM_MOVES = 100_000


def to_first(keys: list[str]) -> int:
    """Move the last task first, MOVES times: the key before the current first."""
    first = keys[0]
    longest = 0
    for _ in range(MOVES):
        first = generate_key_between(None, first)
        longest = max(longest, len(first))
    return longest


def after_the_same_task(keys: list[str]) -> int:
    """Move a task right after task X, MOVES times, each time a task other than the one
    moved before: the new key goes between X and the previous mover."""
    anchor, following = keys[0], keys[1]
    longest = 0
    for _ in range(MOVES):
        following = generate_key_between(anchor, following)
        longest = max(longest, len(following))
    return longest


def before_the_same_task(keys: list[str]) -> int:
    """Move a task right after the previous mover, MOVES times: always just before Y."""
    before, following = keys[0], keys[1]
    longest = 0
    for _ in range(MOVES):
        before = generate_key_between(before, following)
        longest = max(longest, len(before))
    return longest


def moves_until_longer_than(limit: int) -> int:
    anchor, following = "a0", "a1"
    moves = 0
    while len(following) <= limit:
        following = generate_key_between(anchor, following)
        moves += 1
    return moves


def random_moves(tasks: int, seed: int = 13) -> tuple[int, int, float]:
    """RANDOM_MOVES moves of a random task to a random place: the longest key ever made,
    the longest and the mean length at the end."""
    rng = random.Random(seed)
    order = generate_n_keys_between(None, None, tasks)
    longest = 0
    for _ in range(RANDOM_MOVES):
        order.pop(rng.randrange(tasks))
        place = rng.randrange(tasks)
        before = order[place - 1] if place > 0 else None
        following = order[place] if place < len(order) else None
        key = generate_key_between(before, following)
        order.insert(place, key)
        longest = max(longest, len(key))
    lengths = [len(key) for key in order]
    return longest, max(lengths), sum(lengths) / len(lengths)


def main() -> None:
    keys = generate_n_keys_between(None, None, 100)
    print(f"{MOVES:,} moves to first: longest key {to_first(keys)}")
    print(f"{MOVES:,} moves right after the same task: longest key {after_the_same_task(keys)}")
    print(f"{MOVES:,} moves right before the same task: longest key {before_the_same_task(keys)}")
    for limit in (64, 128):
        moves = moves_until_longer_than(limit)
        print(f"moves into one gap until a key is longer than {limit}: {moves}")
    for tasks in (100, 1_000, 10_000):
        longest, now, mean = random_moves(tasks)
        print(
            f"{RANDOM_MOVES:,} random moves among {tasks:,} tasks: longest key ever {longest}, "
            f"at the end longest {now}, mean {mean:.1f}"
        )


if __name__ == "__main__":
    main()
