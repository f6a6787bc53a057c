"""One build step on top of pyproject.toml: ship the default settings and the mail templates.

The repository keeps them at the top level (``settings.toml``, ``templates/mail/``), where a
checkout and the editable install of ``./run`` read them. A wheel has no top level, so the
build copies them into the package as ``worker/_shipped/`` (worker/settings/source.py looks there).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ["settings.toml", *sorted(p.relative_to(ROOT).as_posix()
                                    for p in (ROOT / "templates" / "mail").glob("*.j2"))]


class BuildWithDefaults(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the top-level files themselves
        for name in SHIPPED:
            target = Path(self.build_lib, "worker", "_shipped", name)
            self.mkpath(str(target.parent))
            self.copy_file(str(ROOT / name), str(target), preserve_mode=False)


setup(cmdclass={"build_py": BuildWithDefaults})
