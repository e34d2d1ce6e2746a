"""The checkpoints page: every checkpoint's eval videos in one grid, their validation losses, the
captions that trained each, and the checkpoint `best_lora` exports pinned from the page.

Everything shown is read from the project's records through the pipeline's own functions, so
the page chooses as `best_lora` chooses. Pinning writes `pin` into [eval] of wan_lora.toml as a
user would: one line set, added or removed, every other line and comment kept byte for byte;
the new recipe is checked by the recipe's own reader before it is written, and the file must
still hold what the page read.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline.catalog import Catalog, load_catalog
from wan_lora_dagster.pipeline.evaluation import choose_best
from wan_lora_dagster.pipeline.lineage import checkpoint_lineage
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.problems import Problems
from wan_lora_dagster.project import Project, open_project
from wan_lora_dagster.recipe.reading import read_recipe
from wan_lora_dagster.studio.captions import hash_of

_TABLE = re.compile(r"\s*\[")  # a table header ends [eval]: [training], [eval.walk], ...
_PIN = re.compile(r"\s*pin\s*=")


class RecipeConflict(UserError):
    """wan_lora.toml changed since the page read it."""


class CheckpointsPage:
    def __init__(self, project: Project):
        self.root = project.root

    def grid(self) -> dict:
        """The current training run's checkpoints (each with its step, losses and eval videos),
        the pinned and the chosen one, and the recipe's hash for a pin to come."""
        catalog, keys = self._run()
        records = catalog.records
        rows = []
        for key in keys:
            evaluation = records.read("eval_videos", key)
            checkpoint = records.read("lora_checkpoints", key)
            videos = evaluation.to_json()["videos"] if evaluation else []
            rows.append(
                {
                    "checkpoint": key,
                    "step": checkpoint.step if checkpoint else None,
                    "evaluated": evaluation is not None,
                    "validation_loss": evaluation and evaluation.validation_loss,
                    "validation_loss_base": evaluation and evaluation.validation_loss_base,
                    "videos": [{**video, "index": index} for index, video in enumerate(videos)],
                }
            )
        settings = catalog.project.recipe.eval
        return {
            "checkpoints": rows,
            "strengths": list(settings.strengths),
            "prompts": list(settings.prompts),
            "seeds": list(settings.seeds),
            "pin": settings.pin,
            **self._choice(catalog, [row["checkpoint"] for row in rows if row["evaluated"]]),
            "hash": hash_of(catalog.project.config_path),
        }

    def lineage(self, key: str) -> dict:
        """The captions that trained checkpoint `key`, as `wan-lora lineage` prints them."""
        catalog, keys = self._run()
        _known(key, keys)
        return checkpoint_lineage(catalog, key)

    def eval_file(self, key: str, index: int, field: str) -> Path:
        """The `field` ("file" or "start_image") of eval video `index` of checkpoint `key`: only
        files the records name are served."""
        catalog, keys = self._run()
        _known(key, keys)
        evaluation = catalog.records.read("eval_videos", key)
        videos = evaluation.videos if evaluation else []
        file = getattr(videos[index], field, None) if 0 <= index < len(videos) else None
        if not file:
            raise UserError(f"checkpoint {key} has no eval video {index} with a {field}")
        return catalog.project.root / file

    def pin(self, key: str | None, seen_hash: str) -> dict:
        """Pin checkpoint `key` (None: unpin, the lowest loss is exported again)."""
        path = open_project(self.root).config_path
        if hash_of(path) != seen_hash:
            raise RecipeConflict(f"{path} changed since the page read it: reload to see it")
        if key is not None:
            _known(key, self._run()[1])
        text = path.read_text(encoding="utf-8")
        _check(path, new := _with_pin(text, key))
        write_text_atomic(path, new)
        return self.grid()

    def _run(self) -> tuple[Catalog, list[str]]:
        """The catalog (its recipe read now: the file may have been pinned since) and the
        current training run's checkpoint keys, as `best_lora` takes them."""
        catalog = load_catalog(open_project(self.root))
        return catalog, Expectations(catalog).partitions("lora_checkpoints")

    @staticmethod
    def _choice(catalog: Catalog, evaluated: list[str]) -> dict:
        if not evaluated:
            return {"chosen": None, "pin_problem": None}
        try:
            return {"chosen": choose_best(catalog, evaluated), "pin_problem": None}
        except UserError as problem:  # a pin of another run: the page says so
            return {"chosen": None, "pin_problem": str(problem)}


def _known(key: str, keys: list[str]) -> None:
    if key not in keys:
        raise UserError(
            f"{key!r} is not a checkpoint of the current training run "
            f"({', '.join(keys) or 'none yet'})"
        )


def _with_pin(text: str, key: str | None) -> str:
    """`text` with [eval] pin set to `key` (its line's comment kept), added at the end of [eval]
    (a new [eval] at the end of the file if there is none), or removed."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == "[eval]"), None)
    value = f"pin = {json.dumps(key)}"
    if start is None:
        if key is None:
            return text
        ending = [""] if lines[-1] == "" else []
        body = lines[:-1] if ending else lines
        return "\n".join([*body, "", "[eval]", value, *ending])
    end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])), len(lines))
    existing = next((i for i in range(start + 1, end) if _PIN.match(lines[i])), None)
    if existing is not None:
        if key is None:
            return "\n".join(lines[:existing] + lines[existing + 1 :])
        comment = _comment(lines[existing])
        return "\n".join([*lines[:existing], value + comment, *lines[existing + 1 :]])
    if key is None:
        return text
    last = max((i for i in range(start, end) if lines[i].strip()), default=start)
    return "\n".join([*lines[: last + 1], value, *lines[last + 1 :]])


def _comment(line: str) -> str:
    """The trailing comment of a `pin = "..."` line (a checkpoint key holds no '#')."""
    _, hash_sign, note = line.partition("#")
    return f"  {hash_sign}{note}" if hash_sign else ""


def _check(path: Path, text: str) -> None:
    """Refuse `text` with the recipe reader's message if it would refuse it as `path`."""
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / path.name
        candidate.write_text(text, encoding="utf-8")
        problems = Problems()
        read_recipe(candidate, problems)
        if problems.errors:
            messages = "\n".join(str(error) for error in problems.errors)
            raise UserError(messages.replace(str(candidate), str(path)))
