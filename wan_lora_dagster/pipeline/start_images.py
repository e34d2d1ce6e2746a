"""The frames an image-to-video LoRA's eval videos start from.

By default the first frame of each held-out clip: frames the LoRA never trained on, so its eval
shows how it animates an unseen picture. Plus the images `[eval] images` lists (paths relative
to the project), in that order.
"""

from __future__ import annotations

from PIL import Image

from wan_lora_dagster.disk_full import replacing
from wan_lora_dagster.engines.base import StartImage
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.file_hashes import sha256_of
from wan_lora_dagster.pipeline.items import KIND_BY_NAME
from wan_lora_dagster.project import Project
from wan_lora_dagster.tasks import takes_start_images


def start_images(catalog: Catalog, manifest: TrainingSetManifest) -> tuple[StartImage, ...]:
    """None for a text-to-video task; held-out first frames are written to out/eval/start/."""
    project = catalog.project
    training = project.recipe.training
    if not takes_start_images(training.task, training.i2v):
        return ()
    return (*_held_out_frames(catalog, manifest), *_listed(project))


def listed_images_version(project: Project) -> str:
    """The content of the listed images: an edited image is a new eval."""
    paths = [project.root / name for name in project.recipe.eval.images]
    return fingerprint([sha256_of(path) if path.is_file() else None for path in paths])


def _held_out_frames(catalog: Catalog, manifest: TrainingSetManifest) -> list[StartImage]:
    folder = catalog.project.out("eval", "start")
    images, seen = [], set()
    for entry in manifest.held_out_entries():
        if entry.item_id in seen:  # an item held out from several dataset sections
            continue
        seen.add(entry.item_id)
        media = KIND_BY_NAME[entry.kind].media(catalog, entry.item_id)
        if entry.kind == "still":
            images.append(StartImage(entry.item_id, media))
            continue
        path = folder / f"{entry.item_id}.png"
        with replacing(path) as partial:
            Image.fromarray(read_frames(media, [0])[0]).save(partial, format="PNG")
        images.append(StartImage(entry.item_id, path))
    return images


def _listed(project: Project) -> list[StartImage]:
    images = []
    for name in project.recipe.eval.images:
        path = project.root / name
        if not path.is_file():
            raise UserError(
                f"{project.config_path}: [eval] images: {name!r} not found (looked for {path})"
            )
        images.append(StartImage(name, path))
    return images
