"""Where kohya-ss/musubi-tuner lives, and what the Python that runs it can import.

musubi-tuner is not on PyPI: users clone it. Its scripts live in `src/musubi_tuner/` and import
`musubi_tuner.*`, so a clone runs with `src/` on PYTHONPATH (its docs run
`python src/musubi_tuner/wan_cache_latents.py ...`) and an installed copy (`pip install -e .`) runs
from the package folder itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.errors import EngineError

SCRIPTS = (
    "wan_cache_latents",
    "wan_cache_text_encoder_outputs",
    "wan_train_network",
    "wan_generate_video",
)
INSTALL_HINT = (
    "Install kohya-ss/musubi-tuner (it is not on PyPI): "
    "`git clone https://github.com/kohya-ss/musubi-tuner && cd musubi-tuner && pip install -e .` "
    'with the Python that runs training, then set `musubi_dir = "/path/to/musubi-tuner"` under '
    "[training] in wan_lora.toml."
)

# Asks the musubi Python where a module is, without importing it (find_spec only reads paths).
_FIND_MODULES = """
import importlib.util, json, sys
found = {}
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    found[name] = None if spec is None else list(spec.submodule_search_locations or [spec.origin])
print(json.dumps(found))
"""


@dataclass(frozen=True)
class MusubiInstall:
    """A usable musubi-tuner: the folder of its scripts and what PYTHONPATH needs to run them.

    source_dir: the clone's `src/` folder (put on PYTHONPATH), or None for an installed package.
    """

    package_dir: Path
    source_dir: Path | None = None

    def script(self, name: str) -> Path:
        return self.package_dir / f"{name}.py"

    def environment(self) -> dict[str, str]:
        """Variables to add so the scripts can `import musubi_tuner`."""
        if self.source_dir is None:
            return {}
        existing = os.environ.get("PYTHONPATH")
        paths = [str(self.source_dir), *([existing] if existing else [])]
        return {"PYTHONPATH": os.pathsep.join(paths)}


def find_musubi(musubi_dir: str | None, python: str) -> MusubiInstall:
    """The clone at `[training] musubi_dir`, else the `musubi_tuner` package `python` imports."""
    if musubi_dir:
        install = _from_clone(Path(musubi_dir).expanduser().resolve())
    else:
        location = find_modules(python, ["musubi_tuner"])["musubi_tuner"]
        if not location:
            raise EngineError(
                f"musubi-tuner not found: {python} cannot import musubi_tuner. {INSTALL_HINT}"
            )
        install = MusubiInstall(Path(location[0]))
    missing = [str(install.script(name)) for name in SCRIPTS if not install.script(name).is_file()]
    if missing:
        raise EngineError(
            f"musubi-tuner at {install.package_dir} lacks {', '.join(missing)}; it may be too old "
            f"for Wan 2.1 (this engine was written against commit 30c658c). {INSTALL_HINT}"
        )
    return install


def find_modules(python: str, names: list[str]) -> dict[str, list[str] | None]:
    """module name -> its folders (or file) as `python` would import it, None where it cannot."""
    try:
        result = subprocess.run(
            [python, "-c", _FIND_MODULES, *names],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise EngineError(
            f"cannot run the Python that runs musubi-tuner ({python}): {error}"
        ) from None
    return json.loads(result.stdout)


def _from_clone(root: Path) -> MusubiInstall:
    package_dir = root / "src" / "musubi_tuner"
    if not package_dir.is_dir():
        raise EngineError(
            f"wan_lora.toml: [training] musubi_dir = {str(root)!r} is not a musubi-tuner clone "
            f"(no {package_dir}). {INSTALL_HINT}"
        )
    return MusubiInstall(package_dir, source_dir=package_dir.parent)
