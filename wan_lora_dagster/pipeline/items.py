"""Clips and stills: the two kinds of training item, which pass through the same stages.

Each kind has its own partitions and assets (one Dagster asset has one partitions definition);
the stages they share (caches, the manifest, its report, the dry run, lineage) ask the kind for
what differs: its ids, its media, the version of that media and its shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.frames import image_size, read_image
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import clip_path


@dataclass(frozen=True)
class MediaShape:
    width: int
    height: int
    num_frames: int


class ItemKind(ABC):
    name: str  # the manifest entries' kind
    source: str  # the [[datasets]] source whose sections train on it
    captions: str  # its assets
    text_cache: str
    latent_cache: str

    @property
    def assets(self) -> tuple[str, ...]:
        return (self.captions, self.text_cache, self.latent_cache)

    @abstractmethod
    def ids(self, catalog: Catalog) -> list[str]:
        """Its partition keys, in the project's order."""

    @abstractmethod
    def media(self, catalog: Catalog, item_id: str) -> Path:
        """The file its latents are encoded from."""

    @abstractmethod
    def version(self, catalog: Catalog, item_id: str) -> str:
        """The data version of that file, as made or observed."""

    @abstractmethod
    def shape(self, catalog: Catalog, item_id: str) -> MediaShape:
        """Its upright size and frame count."""

    def unreadable(self, catalog: Catalog, item_ids: list[str]) -> dict[str, str]:
        """Item -> why its media cannot be decoded, found before an engine batch would fail."""
        return {}


class _Clips(ItemKind):
    name, source = "clip", "clips"
    captions, text_cache, latent_cache = "captions", "text_cache", "latent_cache"

    def ids(self, catalog: Catalog) -> list[str]:
        return catalog.clip_ids

    def media(self, catalog: Catalog, item_id: str) -> Path:
        return clip_path(catalog.project, item_id)

    def version(self, catalog: Catalog, item_id: str) -> str:
        return catalog.records.read("clips", item_id).data_version

    def shape(self, catalog: Catalog, item_id: str) -> MediaShape:
        clip = catalog.records.read("clips", item_id)
        return MediaShape(clip.width, clip.height, clip.num_frames)


class _Stills(ItemKind):
    name, source = "still", "stills"
    captions, text_cache, latent_cache = "still_captions", "still_text_cache", "still_latent_cache"

    def ids(self, catalog: Catalog) -> list[str]:
        return catalog.still_ids

    def media(self, catalog: Catalog, item_id: str) -> Path:
        return catalog.still_paths[item_id]

    def version(self, catalog: Catalog, item_id: str) -> str:
        return catalog.still_hashes[item_id]

    def shape(self, catalog: Catalog, item_id: str) -> MediaShape:
        return MediaShape(*image_size(self.media(catalog, item_id)), num_frames=1)

    def unreadable(self, catalog: Catalog, item_ids: list[str]) -> dict[str, str]:
        """The user's images may be damaged: each such still fails alone, named."""
        problems = {}
        for still_id in item_ids:
            try:
                read_image(self.media(catalog, still_id))
            except MediaError as error:
                problems[still_id] = str(error)
        return problems


CLIPS, STILLS = _Clips(), _Stills()
ITEM_KINDS = (CLIPS, STILLS)
KIND_BY_NAME = {kind.name: kind for kind in ITEM_KINDS}
KIND_BY_SOURCE = {kind.source: kind for kind in ITEM_KINDS}
