"""Keys of the manual order: fractional indexing (the `fractional-indexing` package, whose
keys are those of the npm package of the same name), kept short by rebalancing. A move's
key is computed in the database (tasks_key_between, migration 0004, tested against it).

Measurements and the reasons for the thresholds are in specs/ordering.md.
"""

from collections.abc import Sequence
from uuid import UUID

from fractional_indexing import generate_n_keys_between

# A move whose new key would be longer than this rewrites all of the user's keys instead.
# Far below the contract's 128 (models.task.POSITION_MAX): a rebalance happens only after
# hundreds of moves into one gap, and a key never comes near the limit.
REBALANCE_AT = 64


def rebalanced(
    order: Sequence[tuple[UUID, str]], task_id: UUID, after: UUID | None
) -> dict[UUID, str]:
    """New keys for every task of `order` (id, key in order), with `task_id` moved after
    `after` (first when None).

    The keys are consecutive "integer" keys (2 to 4 characters for up to 238,000 tasks)
    that all sort before the current first key: no new key equals an old key of another
    task, so one UPDATE can give them out without a transient unique violation.
    """
    ids = [task for task, _ in order if task != task_id]
    ids.insert(0 if after is None else ids.index(after) + 1, task_id)
    keys = generate_n_keys_between(None, order[0][1], len(ids))
    return dict(zip(ids, keys, strict=True))
