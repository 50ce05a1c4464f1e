"""Terminal key decoding (bytes -> events), the base-velocity state machine, the terminal reader on a
pseudo-terminal (kitty and legacy), and the safety clamp."""

from __future__ import annotations

import os
import threading
import time

import pytest

from lekiwi_drift.teleop import keyboard as kb
from lekiwi_drift.teleop.keys import (
    KITTY_POP,
    KITTY_PUSH,
    PRESS,
    RELEASE,
    REPEAT,
    KeyDecoder,
    KeyEvent,
    TerminalReply,
)
from lekiwi_drift.teleop.sources import clamp_action


def keys(data: bytes, flush: bool = True) -> list:
    d = KeyDecoder()
    out = d.feed(data)
    return out + (d.flush() if flush else [])


def ev(key, kind=PRESS, *mods):
    return KeyEvent(key, kind, frozenset(mods))


# -- legacy terminals ------------------------------------------------------------------------------
def test_plain_text_and_controls():
    assert keys(b"wasd") == [ev("w"), ev("a"), ev("s"), ev("d")]
    assert keys(b" \r\t\x7f") == [ev("space"), ev("enter"), ev("tab"), ev("backspace")]
    assert keys(b"W") == [ev("w", PRESS, "shift")]
    assert keys(b"\x03") == [ev("c", PRESS, "ctrl")] and keys(b"\x03")[0].is_ctrl_c
    assert keys("é".encode()) == [ev("é")]


def test_cursor_keys_csi_ss3_and_modifiers():
    assert keys(b"\x1b[C\x1b[D\x1b[A\x1b[B") == [ev("right"), ev("left"), ev("up"), ev("down")]
    assert keys(b"\x1bOC\x1bOD") == [ev("right"), ev("left")]  # application cursor mode
    assert keys(b"\x1b[1;5C") == [ev("right", PRESS, "ctrl")]
    assert keys(b"\x1b[3~") == [ev("delete")]


def test_lone_escape_needs_flush_and_alt_keys():
    d = KeyDecoder()
    assert d.feed(b"\x1b") == [] and d.pending  # could still become a sequence
    assert d.flush() == [ev("esc")]
    assert keys(b"\x1bq") == [ev("q", PRESS, "alt")]
    assert keys(b"\x1b\x1b") == [ev("esc"), ev("esc")]


def test_sequences_split_across_reads():
    d = KeyDecoder()
    out = []
    for byte in b"\x1b[1;1:3Dn\x1b[119;1:2u":
        out += d.feed(bytes([byte]))
    assert out == [ev("left", RELEASE), ev("n"), ev("w", REPEAT)]


def test_garbage_never_raises_and_resyncs():
    junk = bytes(range(256)) + b"\x1b[\xff\x1b[999999999999;x;u\x1b[?zz" + b"\x80\x80w"
    out = keys(junk)
    assert all(isinstance(e, (KeyEvent, TerminalReply)) for e in out)
    d = KeyDecoder()
    d.feed(b"\x1b[" + b"1;" * 100)  # an endless "sequence" (no final byte) is given up on
    assert not d.pending and d.feed(b"w") == [ev("w")]


# -- kitty keyboard protocol -----------------------------------------------------------------------
def test_kitty_press_repeat_release_of_text_keys():
    assert keys(b"\x1b[119u\x1b[119;1:2u\x1b[119;1:3u") == [ev("w"), ev("w", REPEAT), ev("w", RELEASE)]
    assert keys(b"\x1b[97;2u") == [ev("a", PRESS, "shift")]
    assert keys(b"\x1b[100;1:1u") == [ev("d")]
    assert keys(b"\x1b[32;1:3u") == [ev("space", RELEASE)]
    assert keys(b"\x1b[97:65;2u") == [ev("a", PRESS, "shift")]  # alternate key code ignored


def test_kitty_functional_keys_and_ctrl_c():
    assert keys(b"\x1b[27u") == [ev("esc")]
    assert keys(b"\x1b[13u\x1b[9u\x1b[127u") == [ev("enter"), ev("tab"), ev("backspace")]
    assert keys(b"\x1b[1;1:3C\x1b[D") == [ev("right", RELEASE), ev("left")]
    assert keys(b"\x1b[3;1:2~") == [ev("delete", REPEAT)]
    ctrl_c = keys(b"\x1b[99;5u")
    assert ctrl_c == [ev("c", PRESS, "ctrl")] and ctrl_c[0].is_ctrl_c
    assert keys(b"\x1b[57441u") == []  # a lone modifier key (left shift) is not a key we use


def test_terminal_replies():
    assert keys(b"\x1b[?11u") == [TerminalReply("kitty_flags", 11)]
    assert keys(b"\x1b[?62;22c") == [TerminalReply("device_attributes")]
    assert KITTY_PUSH == b"\x1b[>11u" and KITTY_POP == b"\x1b[<u"


# -- base velocity state machine -------------------------------------------------------------------
def test_hold_mode_moves_only_while_held():
    s = kb.BaseKeys(hold=True)
    s.handle(ev("w"))
    s.handle(ev("a"))
    assert s.velocity() == {"x.vel": 0.1, "y.vel": 0.1, "theta.vel": 0.0}
    s.handle(ev("w", REPEAT))
    s.handle(ev("w", RELEASE))
    assert s.velocity() == {"x.vel": 0.0, "y.vel": 0.1, "theta.vel": 0.0}
    s.handle(ev("a", RELEASE))
    s.handle(ev("x"))
    assert s.velocity()["theta.vel"] == -30.0
    s.handle(ev("space"))
    assert not s.moving


def test_latched_mode_and_speed_levels():
    s = kb.BaseKeys(hold=False)
    s.handle(ev("w"))
    s.handle(ev("w"))  # terminal auto-repeat arrives as presses: still the same latch
    assert s.velocity()["x.vel"] == 0.1
    s.handle(ev("r"))
    s.handle(ev("r"))
    s.handle(ev("r"))
    assert s.speed_index == 2 and s.velocity()["x.vel"] == 0.3
    s.handle(ev("z"))
    assert s.velocity() == {"x.vel": 0.3, "y.vel": 0.0, "theta.vel": 90.0}
    s.handle(ev("s"))  # the opposite key cancels forward motion
    assert s.velocity()["x.vel"] == 0.0
    s.handle(ev("f"))
    assert s.velocity()["theta.vel"] == 60.0
    s.handle(ev("space"))
    assert not s.moving
    assert [lvl for lvl in kb.SPEED_LEVELS] == [(0.1, 30.0), (0.2, 60.0), (0.3, 90.0)]


def test_episode_commands_and_ctrl_c():
    s = kb.BaseKeys()
    for e in (ev("right"), ev("n"), ev("left"), ev("b"), ev("esc"), ev("q"), ev("c", PRESS, "ctrl"), ev("n", RELEASE)):
        s.handle(e)
    assert list(s.commands) == [kb.NEXT, kb.NEXT, kb.RERECORD, kb.RERECORD, kb.STOP, kb.STOP, kb.INTERRUPT]


# -- the terminal reader on a pseudo-terminal ------------------------------------------------------
class FakeTerminal:
    """The far end of a pty: answers the keyboard's queries like a kitty (or a legacy) terminal."""

    def __init__(self, kitty: bool):
        self.master, self.slave = os.openpty()
        self.kitty = kitty
        self.seen = b""
        self.out = os.fdopen(os.dup(self.slave), "w")  # what the keyboard writes reaches the master
        self._thread = threading.Thread(target=self._answer, daemon=True)
        self._thread.start()

    def _answer(self):
        while b"\x1b[c" not in self.seen:
            self.seen += os.read(self.master, 1024)
        os.write(self.master, (b"\x1b[?0u" if self.kitty else b"") + b"\x1b[?62;22c")

    def type(self, data: bytes):
        os.write(self.master, data)

    def close(self):
        self.out.close()
        os.close(self.slave)
        os.close(self.master)


def _wait(pred, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("kitty", [True, False])
def test_terminal_keyboard_detects_mode_and_restores_terminal(kitty):
    import termios

    term = FakeTerminal(kitty)
    try:
        before = termios.tcgetattr(term.slave)
        keyboard = kb.TerminalKeyboard(fd=term.slave, out=term.out).start()
        try:
            assert keyboard.mode == (kb.HOLD if kitty else kb.LATCHED)
            assert ("hold-to-move" if kitty else "latched") in keyboard.mode_text
            if kitty:
                term.type(b"\x1b[119u")
                assert _wait(lambda: keyboard.velocity()["x.vel"] == 0.1)
                term.type(b"\x1b[119;1:3u")
                assert _wait(lambda: not keyboard.moving())
            else:
                term.type(b"w")
                assert _wait(lambda: keyboard.velocity()["x.vel"] == 0.1)
                term.type(b" ")
                assert _wait(lambda: not keyboard.moving())
            term.type(b"n\x1b")  # next, then a lone ESC resolved by the quiet-time flush
            assert _wait(lambda: len(keyboard._state.commands) == 2)
            assert keyboard.pop_commands() == [kb.NEXT, kb.STOP]
        finally:
            keyboard.stop()
        assert termios.tcgetattr(term.slave) == before
        if kitty:  # pushed and popped the enhancement flags
            import select

            while KITTY_POP not in term.seen and select.select([term.master], [], [], 1.0)[0]:
                term.seen += os.read(term.master, 1024)
            assert KITTY_PUSH in term.seen and term.seen.endswith(KITTY_POP)
    finally:
        term.close()


def test_not_a_terminal_means_no_keys(tmp_path):
    with open(tmp_path / "stdin", "w+") as f:
        keyboard = kb.TerminalKeyboard(fd=f.fileno()).start()
        assert keyboard.mode == kb.NO_KEYS and "off" in keyboard.mode_text
        keyboard.stop()


# -- safety clamp ------------------------------------------------------------------------------------
def test_clamp_to_joint_limits_and_base_caps():
    a = {
        "arm_shoulder_pan.pos": 500.0,
        "arm_shoulder_lift.pos": -500.0,
        "arm_elbow_flex.pos": 10.0,
        "arm_wrist_flex.pos": 0.0,
        "arm_wrist_roll.pos": 170.0,
        "arm_gripper.pos": -5.0,
        "x.vel": 1.0,
        "y.vel": -1.0,
        "theta.vel": 200.0,
    }
    c = clamp_action(a)
    assert c["arm_shoulder_pan.pos"] == 110.0 and c["arm_shoulder_lift.pos"] == -100.0
    assert c["arm_elbow_flex.pos"] == 10.0 and c["arm_wrist_roll.pos"] == 160.0 and c["arm_gripper.pos"] == 0.0
    assert (c["x.vel"], c["y.vel"], c["theta.vel"]) == (0.3, -0.3, 90.0)
    with pytest.raises(ValueError):
        clamp_action({**a, "x.vel": float("nan")})
    with pytest.raises(ValueError):
        clamp_action({k: v for k, v in a.items() if k != "y.vel"})
