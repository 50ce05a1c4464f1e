"""The onboard control loop: policy presets, the warm policy runtime, the 30 Hz loop, safety, telemetry.

Public API (used by `lekiwi-drift run`, the trials TUI and `bench loop`, all through one RobotSession):

    from lekiwi_drift.control.preset import Preset, load_preset
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.control.session import RobotSession, SimSpec
    from lekiwi_drift.control.episode import EpisodeResult, TickStatus

    preset = load_preset("drift")                 # a name in policies/ or a path to a .yaml
    runtime = PolicyRuntime.load(preset, robot_config)   # loads once, checks cameras/shapes, warm
    runtime.checkpoint_hash                       # short sha256 of model.safetensors
    session = RobotSession(robot_config, sim=SimSpec(...) or None, latency=None, run_dir=None)
    session.open(progress)                        # start the sim if asked, connect the link
    session.add_policy("drift", runtime)          # a ControlLoop on the session's link
    session.reset(item, seed, scene)              # sim only
    result = session.run_episode("drift", max_time_s=60.0, stop=threading.Event(), on_status=callback_or_None)
    session.stop()                                # any thread, the one stop path: base stopped, arm held
    session.close()                               # stop, end the loops' threads and telemetry, link, sim

`run_episode` blocks; `on_status(TickStatus)` is called a few times a second from the loop's thread
(`TickStatus`: elapsed_s, hz, obs_age_ms, last_infer_ms (compute), last_latency_ms (observation to chunk
ready), stall_ticks, late_actions, queue_len, auto_success, images, chunks, line). `EpisodeResult`: outcome in
{"success", "timeout", "stopped", "estop", "error", "stale"}, duration_s, auto_success (the sim's `_success`,
else None), error, and a telemetry summary dict (chunks, infer_ms_p50, prefix_ms_p50, expert_ms_p50,
keystone_ms_p50, hz, stall_ticks, late_actions, skipped_actions, dropped_actions, lateness_ms_p99, overruns,
...). With a sim host the episode ends "success" as soon as `_success` is true, unless the preset sets
`end_on_success: false`.

Files, one job each: preset.py (parse/validate presets), runtime.py (policy + processors, observation ->
batch, timed chunks), scheduler.py (timestamped action queue, latency compensation, replan trigger), safety.py
(limits, caps, holds), loop.py (the tick loop), episode.py (its status and result), session.py (setup, stop,
teardown), worker.py (the inference thread), telemetry.py (JSONL, status, summary), keys.py (terminal e-stop).
"""
