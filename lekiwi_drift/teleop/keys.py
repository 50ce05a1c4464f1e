"""Terminal key decoding: bytes from a terminal in, key events out. Pure: no I/O, no clock.

Why our own decoder: LeRobot's `KeyboardTeleop` uses `pynput`, which captures nothing on Wayland, over
SSH or headless (and `import pynput` raises without X). Reading the terminal works everywhere, but a
plain terminal only reports key *presses* (plus auto-repeat). Terminals that speak the kitty keyboard
protocol (kitty, foot, WezTerm, Ghostty, recent Alacritty/iTerm2, ...) also report releases once asked
with progressive-enhancement flags, which makes hold-to-move driving possible.

Understood input:
- legacy bytes: printable UTF-8 text, Enter/Tab/Backspace, Ctrl+letter (0x01..0x1a), lone ESC (the
  Escape key; a lone ESC is ambiguous until more bytes arrive or the reader calls `flush()`),
  ESC + char (Alt+char), CSI/SS3 cursor keys (`ESC [ A`, `ESC O A`, `ESC [ 1 ; 5 A`), `ESC [ 3 ~`.
- kitty: `CSI code[:alt] ; mods[:event] [; text] u` and `CSI 1 ; mods:event A..D/H/F/P..S`,
  `CSI n ; mods:event ~`, with event 1 press, 2 repeat, 3 release.
- terminal replies: `CSI ? flags u` (kitty protocol supported, current flags) and `CSI ? ... c`
  (primary device attributes, which every terminal answers; sent after the kitty query, it tells us
  the query got no kitty answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ESC = 0x1B

# Kitty progressive enhancement flags (https://sw.kovidgoyal.net/kitty/keyboard-protocol/).
KITTY_DISAMBIGUATE = 0b1
KITTY_REPORT_EVENTS = 0b10  # repeat and release events
KITTY_REPORT_ALL_KEYS = 0b1000  # needed for release events of keys that produce text (w/a/s/d)
KITTY_FLAGS = KITTY_DISAMBIGUATE | KITTY_REPORT_EVENTS | KITTY_REPORT_ALL_KEYS

KITTY_QUERY = b"\x1b[?u"  # answered with CSI ? flags u by kitty-protocol terminals
DEVICE_ATTRIBUTES_QUERY = b"\x1b[c"  # answered by every terminal: marks the end of the kitty answer
KITTY_PUSH = f"\x1b[>{KITTY_FLAGS}u".encode()
KITTY_POP = b"\x1b[<u"

PRESS, REPEAT, RELEASE = "press", "repeat", "release"
_EVENTS = {1: PRESS, 2: REPEAT, 3: RELEASE}
_MOD_BITS = (("shift", 1), ("alt", 2), ("ctrl", 4), ("super", 8))  # caps/num lock bits are ignored

# Kitty key codes and legacy final bytes -> our key names.
_CODEPOINT_NAMES = {27: "esc", 13: "enter", 9: "tab", 127: "backspace", 8: "backspace", 32: "space"}
_CSI_LETTER_KEYS = {
    "A": "up",
    "B": "down",
    "C": "right",
    "D": "left",
    "H": "home",
    "F": "end",
    "P": "f1",
    "Q": "f2",
    "R": "f3",
    "S": "f4",
}
_TILDE_KEYS = {
    2: "insert",
    3: "delete",
    5: "pageup",
    6: "pagedown",
    7: "home",
    8: "end",
    11: "f1",
    12: "f2",
    13: "f3",
    14: "f4",
    15: "f5",
    17: "f6",
    18: "f7",
    19: "f8",
    20: "f9",
    21: "f10",
    23: "f11",
    24: "f12",
}
# Kitty's private-use code points for keys that have no legacy byte (only the ones a teleoperator might hit).
_KITTY_FUNCTIONAL = {57399 + i: str(i) for i in range(10)} | {57414: "enter"}


@dataclass(frozen=True)
class KeyEvent:
    """One key event. `key`: a lower-case character ("w", "1", "?") or a name ("space", "esc", "enter",
    "tab", "backspace", "up", "down", "left", "right", "home", "end", "delete", "f1"...)."""

    key: str
    kind: str = PRESS  # press | repeat | release (legacy terminals only ever report press)
    mods: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_ctrl_c(self) -> bool:
        return self.key == "c" and "ctrl" in self.mods


@dataclass(frozen=True)
class TerminalReply:
    """A terminal's answer to a query: `kitty_flags` (value = current flags) or `device_attributes`."""

    kind: str
    value: int = 0


def _mods(mask_plus_one: int) -> frozenset[str]:
    mask = max(mask_plus_one - 1, 0)
    return frozenset(name for name, bit in _MOD_BITS if mask & bit)


def _char_event(ch: str, mods: frozenset[str] = frozenset(), kind: str = PRESS) -> KeyEvent:
    if ch == " ":
        return KeyEvent("space", kind, mods)
    if ch.isupper():  # Shift+w arrives as "W" in legacy mode; key names stay lower case
        return KeyEvent(ch.lower(), kind, mods | {"shift"})
    return KeyEvent(ch, kind, mods)


def _legacy_byte(b: int) -> KeyEvent | None:
    if b in (0x0D, 0x0A):
        return KeyEvent("enter")
    if b == 0x09:
        return KeyEvent("tab")
    if b in (0x7F, 0x08):
        return KeyEvent("backspace")
    if b == 0x00:
        return KeyEvent("space", PRESS, frozenset({"ctrl"}))
    if 0x01 <= b <= 0x1A:
        return KeyEvent(chr(b + 0x60), PRESS, frozenset({"ctrl"}))
    return None  # other C0 controls carry no key we use


class KeyDecoder:
    """Incremental decoder. `feed(data)` returns the complete events in `data` (plus any held back from
    earlier calls) and keeps an incomplete escape sequence for the next call. `flush()` resolves what is
    still held: a lone ESC becomes the Escape key (call it when the terminal has been quiet ~50 ms)."""

    MAX_SEQUENCE = 64  # a longer "sequence" is garbage: drop it rather than wait forever

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[KeyEvent | TerminalReply]:
        self._buf.extend(data)
        events: list[KeyEvent | TerminalReply] = []
        while self._buf:
            used, event = self._parse_one(bytes(self._buf))
            if used == 0:  # incomplete: wait for more bytes
                if len(self._buf) > self.MAX_SEQUENCE:
                    del self._buf[:1]
                    continue
                break
            del self._buf[:used]
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[KeyEvent | TerminalReply]:
        """Resolve held bytes as if no more will come."""
        buf, self._buf = bytes(self._buf), bytearray()
        if not buf:
            return []
        if buf == b"\x1b":
            return [KeyEvent("esc")]
        if buf in (b"\x1b[", b"\x1bO"):  # Alt+[ / Alt+O typed alone
            return [KeyEvent(chr(buf[1]).lower(), PRESS, frozenset({"alt"}))]
        return []  # a truncated sequence: nothing sensible to report

    # -- one event ---------------------------------------------------------------------------------
    def _parse_one(self, buf: bytes) -> tuple[int, KeyEvent | TerminalReply | None]:
        """(bytes used, event or None). Used == 0 means the buffer holds an incomplete sequence."""
        b = buf[0]
        if b == ESC:
            return self._parse_escape(buf)
        if b < 0x20 or b == 0x7F:
            return 1, _legacy_byte(b)
        # UTF-8 text: the lead byte tells the length.
        n = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 0
        if n == 0:
            return 1, None  # stray continuation byte
        if len(buf) < n:
            return 0, None
        try:
            ch = buf[:n].decode("utf-8")
        except UnicodeDecodeError:
            return 1, None
        return n, _char_event(ch)

    def _parse_escape(self, buf: bytes) -> tuple[int, KeyEvent | TerminalReply | None]:
        if len(buf) == 1:
            return 0, None  # lone ESC so far: Escape key, or the start of a sequence
        second = buf[1]
        if second == ord("["):
            return self._parse_csi(buf)
        if second == ord("O"):  # SS3: application-mode cursor keys and F1-F4
            if len(buf) < 3:
                return 0, None
            name = _CSI_LETTER_KEYS.get(chr(buf[2]))
            return 3, KeyEvent(name) if name else None
        if second == ESC:  # ESC ESC: Escape pressed twice (or Alt+Esc); report one Escape, re-read the second
            return 1, KeyEvent("esc")
        used, inner = self._parse_one(buf[1:])
        if used == 0:
            return 0, None
        if isinstance(inner, KeyEvent):  # Alt+key in legacy encoding
            return used + 1, KeyEvent(inner.key, inner.kind, inner.mods | {"alt"})
        return used + 1, None

    def _parse_csi(self, buf: bytes) -> tuple[int, KeyEvent | TerminalReply | None]:
        # CSI = ESC [ ; parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, one final byte 0x40-0x7E.
        i = 2
        while i < len(buf) and 0x20 <= buf[i] <= 0x3F:
            i += 1
        if i >= len(buf):
            return 0, None
        final = buf[i]
        if not 0x40 <= final <= 0x7E:
            return i, None  # malformed: drop what we read, resync on the next byte
        params = buf[2:i].decode("ascii", "replace")
        return i + 1, self._csi_event(params, chr(final))

    @staticmethod
    def _csi_event(params: str, final: str) -> KeyEvent | TerminalReply | None:
        if params.startswith("?"):
            if final == "u":
                digits = params[1:]
                return TerminalReply("kitty_flags", int(digits) if digits.isdigit() else 0)
            if final == "c":
                return TerminalReply("device_attributes")
            return None
        if params and not params[0].isdigit() and params[0] != ";":
            return None  # private sequences (e.g. CSI > ...) are not keys
        fields = params.split(";")
        try:
            key_code = int(fields[0].split(":")[0]) if fields[0] else 1
            mod_field = fields[1].split(":") if len(fields) > 1 and fields[1] else ["1"]
            mods = _mods(int(mod_field[0] or 1))
            kind = _EVENTS.get(int(mod_field[1]) if len(mod_field) > 1 and mod_field[1] else 1, PRESS)
        except ValueError:
            return None
        if final == "u":
            if key_code in _CODEPOINT_NAMES:
                return KeyEvent(_CODEPOINT_NAMES[key_code], kind, mods)
            if key_code in _KITTY_FUNCTIONAL:
                return KeyEvent(_KITTY_FUNCTIONAL[key_code], kind, mods)
            if 0x20 < key_code < 0xE000 or key_code > 0xF8FF:
                return _char_event(chr(key_code), mods, kind)
            return None  # other private-use keys (media keys, lone modifiers)
        if final == "~":
            name = _TILDE_KEYS.get(key_code)
            return KeyEvent(name, kind, mods) if name else None
        name = _CSI_LETTER_KEYS.get(final)
        return KeyEvent(name, kind, mods) if name else None
