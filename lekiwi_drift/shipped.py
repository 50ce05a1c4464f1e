"""Where the shipped presets, protocols and quickstart checkpoints are, in a checkout and in a wheel.

The product's top level is fixed: presets live in `policies/` (with the small checkpoints under
`policies/checkpoints/`) and trial protocols in `trials/`, next to the package in a checkout. An
editable install runs from the checkout and finds them there. A wheel (`pip install .`, a git URL)
carries copies inside the package (`lekiwi_drift/_shipped/{policies,trials}`, put there by setup.py's
build step), so `lekiwi-drift run --policy drift` and `lekiwi-drift trials salt_bottle --sim` work from
any directory. A user's own `./policies` and `./trials` are looked up first, always.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE.parent
_WHEEL = PACKAGE / "_shipped"


def shipped_dir(kind: str) -> Path:
    """`kind` is "policies" or "trials": the wheel's copy when installed from one, else the checkout's."""
    if kind not in ("policies", "trials"):
        raise ValueError(f"unknown shipped folder {kind!r}")
    packaged = _WHEEL / kind
    return packaged if packaged.is_dir() else _CHECKOUT / kind


def from_checkout() -> bool:
    """Running from a source checkout (an editable install or `python -m` in the repository)."""
    return not _WHEEL.is_dir() and (_CHECKOUT / "pyproject.toml").is_file()
