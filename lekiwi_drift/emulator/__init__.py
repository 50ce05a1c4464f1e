"""Emulated Feetech STS3215 servo buses on pseudo-terminals: the real-robot path (LeRobot's LeKiwi,
SO101Leader, calibration, our host) without a robot. See docs/emulator.md.

protocol.py: packet framing; servo.py: one servo's control table; drive.py: what turns a shaft;
bus.py: a bus on a pty; bus_process.py: a bus served from a child process (tests that run LeRobot);
layouts.py: the LeKiwi's and the SO-101 leader's servos; hands.py: a person moving joints during
calibration.
"""
