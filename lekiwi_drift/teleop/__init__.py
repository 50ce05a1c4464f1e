"""Teleoperation: terminal keys (keys.py, keyboard.py), the SO-101 leader (leader.py), action sources and
the safety clamp (sources.py), the 30 Hz loop (session.py) and its assembly (app.py). See docs/teleop.md."""
