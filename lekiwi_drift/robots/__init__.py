"""Robots the host can serve: the real LeKiwi, a fake one for tests and demos, and (in `lekiwi_drift.sim`)
the MuJoCo simulation. All follow `HostedRobot` in `base.py`; `factory.make_robot` picks one by name."""
