"""`lekiwi-drift trials`: repeated pick-and-place trials per policy, with durable, honest tallies.

Plain modules (no Textual): protocol.py (protocol files), schedule.py (order, blind codes), store.py
(SQLite session file, lock), session.py (what comes next, scoring, undo, tallies), stats.py (Wilson,
Fisher), report.py + chart.py (text, Markdown, CSV, PNG), backend.py (the robot side: link, policies,
control loops). The TUI: app.py (flow and app-wide keys), screens.py, widgets.py, preview.py, trials.tcss.
"""
