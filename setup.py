"""Build step only: copy the shipped presets, quickstart checkpoints and trial protocols into the wheel.

The product keeps `policies/` and `trials/` at the top of the repository (users edit them there); a
wheel has no such top level, so the build puts copies under `lekiwi_drift/_shipped/` (found by
lekiwi_drift/shipped.py). Only what is tracked for shipping is copied: presets, protocols and the
checkpoint folders; never trial sessions or other local output.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIP = {
    "policies": ["*.yaml", "checkpoints/README.md", "checkpoints/*/*"],
    "trials": ["*.yaml"],
}


class BuildWithShippedData(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders directly
            return
        for folder, patterns in SHIP.items():
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    if src.is_file():
                        dest = Path(self.build_lib) / "lekiwi_drift" / "_shipped" / src.relative_to(ROOT)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(src, dest)


setup(cmdclass={"build_py": BuildWithShippedData})
