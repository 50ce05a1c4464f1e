"""Run the scripted expert over seeded scenes and tally its success (`lekiwi-drift sim eval-expert`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lekiwi_drift.sim.config import CONTROL_HZ, SimConfig
from lekiwi_drift.sim.expert import ScriptedExpert
from lekiwi_drift.sim.robot import SimLeKiwi

DEFAULT_TIME_LIMIT_S = 30.0


@dataclass(frozen=True)
class EpisodeResult:
    item: str
    seed: int
    success: bool
    sim_time: float  # sim seconds until success, or the time limit
    phase: str  # where the expert was when the episode ended


def run_episode(
    sim: SimLeKiwi,
    item: str,
    seed: int,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    on_tick: Callable[[SimLeKiwi, ScriptedExpert], None] | None = None,
) -> EpisodeResult:
    """Reset `sim` (a lockstep SimLeKiwi) to (item, seed) and let the expert act until success or the
    time limit. `on_tick` runs after every action (the snapshot command records frames with it)."""
    sim.handle_request({"op": "reset", "item": item, "seed": seed})
    expert = ScriptedExpert(sim)
    for _ in range(int(round(time_limit_s * CONTROL_HZ))):
        sim.send_action(expert.act())
        if on_tick is not None:
            on_tick(sim, expert)
        if sim.task.success:
            break
    return EpisodeResult(item, seed, bool(sim.task.success), round(sim.clock(), 3), expert.phase)


def evaluate_expert(
    items: Sequence[str],
    episodes: int,
    first_seed: int = 0,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    progress: Callable[[EpisodeResult], None] | None = None,
) -> dict[str, list[EpisodeResult]]:
    """Episodes seeded first_seed .. first_seed+episodes-1 for each item, without rendering."""
    sim = SimLeKiwi(SimConfig(item=items[0], clock="lockstep", render=False))
    sim.connect()
    results: dict[str, list[EpisodeResult]] = {}
    try:
        for item in items:
            results[item] = []
            for seed in range(first_seed, first_seed + episodes):
                res = run_episode(sim, item, seed, time_limit_s)
                results[item].append(res)
                if progress is not None:
                    progress(res)
    finally:
        sim.disconnect()
    return results


def format_table(results: dict[str, list[EpisodeResult]], wall_s: float | None = None) -> str:
    rows = [f"{'item':<15} {'success':>9} {'rate':>7} {'mean time (s)':>14}  failed seeds"]
    for item, res in results.items():
        ok = [r for r in res if r.success]
        mean_t = sum(r.sim_time for r in ok) / len(ok) if ok else float("nan")
        failed = ", ".join(f"{r.seed}({r.phase})" for r in res if not r.success) or "-"
        rows.append(
            f"{item:<15} {len(ok):>4}/{len(res):<4} {100.0 * len(ok) / max(len(res), 1):>6.1f}% "
            f"{mean_t:>14.2f}  {failed}"
        )
    if wall_s is not None:
        rows.append(f"({sum(len(r) for r in results.values())} episodes in {wall_s:.1f} s wall time)")
    return "\n".join(rows)


def timed_evaluation(
    items: Sequence[str],
    episodes: int,
    first_seed: int = 0,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    show_progress: bool = True,
) -> tuple[dict[str, list[EpisodeResult]], float]:
    """`evaluate_expert` and its wall time; `show_progress`: a bar on stderr (a full table takes minutes)."""
    from lekiwi_drift.progress import bar

    t0 = time.monotonic()
    solved = 0
    with bar(len(items) * episodes, "scripted expert", unit="episode", disable=not show_progress) as pbar:

        def tick(res: EpisodeResult) -> None:
            nonlocal solved
            solved += res.success
            verdict = "solved" if res.success else "failed"
            pbar.set_postfix_str(f"{res.item} seed {res.seed}: {verdict}; {solved} solved")
            pbar.update(1)

        results = evaluate_expert(items, episodes, first_seed, time_limit_s, progress=tick)
    return results, time.monotonic() - t0
