"""Trial order and blind codes, both derived from one recorded seed so a session can be re-derived.

Interleaved (the default): block b runs every policy once, in an order shuffled per block. A slow drift
in the scene, the lighting or the operator then hits every policy alike, which a blocked order (all of
policy A, then all of B) would turn into a difference between policies.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from lekiwi_drift.trials.protocol import Protocol


@dataclass(frozen=True)
class Slot:
    index: int  # 0-based position in the session
    block: int  # interleaved: the block (one run of every policy); blocked: the policy's run
    policy: str  # preset name as written in the protocol


def build_schedule(policies: tuple[str, ...] | list[str], trials_per_policy: int, order: str, seed: int) -> list[Slot]:
    rng = random.Random(f"order:{seed}")  # string seeds hash stably across runs and platforms
    names = list(policies)
    slots: list[Slot] = []
    if order == "interleaved":
        for block in range(trials_per_policy):
            shuffled = names[:]
            rng.shuffle(shuffled)
            base = len(slots)
            slots.extend([Slot(base + i, block, p) for i, p in enumerate(shuffled)])
    elif order == "blocked":
        shuffled = names[:]
        rng.shuffle(shuffled)  # which policy goes first is chance too, not the protocol file's order
        for block, policy in enumerate(shuffled):
            base = len(slots)
            slots.extend([Slot(base + i, block, policy) for i in range(trials_per_policy)])
    else:
        raise ValueError(f"unknown order {order!r}")
    return slots


def schedule_for(protocol: Protocol, seed: int) -> list[Slot]:
    return build_schedule(protocol.policies, protocol.trials_per_policy, protocol.order, seed)


def blind_codes(policies: tuple[str, ...] | list[str], seed: int) -> dict[str, str]:
    """Policy -> letter code. The letters follow a seeded shuffle, so "A" is not always the first
    policy in the protocol file (which the operator may have read)."""
    shuffled = list(policies)
    random.Random(f"codes:{seed}").shuffle(shuffled)
    return {p: string.ascii_uppercase[i] for i, p in enumerate(shuffled)}


def draw_seed() -> int:
    """A fresh session seed when the protocol does not fix one (recorded in the session)."""
    return random.SystemRandom().randrange(1, 2**31)
