"""Dagster resources: small typed handles on the project, ffmpeg, the captioner and the engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from wan_lora_dagster.captioning.backends import Captioner, load_captioner
from wan_lora_dagster.engines import create_engine
from wan_lora_dagster.engines.background import cancel_on_signals
from wan_lora_dagster.engines.base import Engine
from wan_lora_dagster.engines.devices import worker_devices
from wan_lora_dagster.engines.multi_device import MultiDeviceEngine
from wan_lora_dagster.library_output import quiet_libraries
from wan_lora_dagster.media.cut import CutSettings
from wan_lora_dagster.media.ffmpeg import find_ffmpeg
from wan_lora_dagster.pipeline.catalog import Catalog, load_catalog
from wan_lora_dagster.pipeline.dataset import captioner_settings, ensure_tiny_captioner
from wan_lora_dagster.project import Project, open_project


class ProjectResource(dg.ConfigurableResource):
    """The user's project folder; its files are read afresh for every step."""

    root: str

    def project(self) -> Project:
        return open_project(self.root)

    def catalog(self) -> Catalog:
        return load_catalog(self.project())


class FfmpegResource(dg.ConfigurableResource):
    """How clips are cut: the ffmpeg binary and the h264 quality."""

    binary: str | None = None
    crf: int = 14
    preset: str = "fast"

    def cut_settings(self) -> CutSettings:
        return CutSettings(crf=self.crf, preset=self.preset, ffmpeg=find_ffmpeg(self.binary))


class CaptionerResource(dg.ConfigurableResource):
    """The captioner of `[captions]`, loaded once per step (once per device when split)."""

    device: str = "cpu"
    devices: str | None = None  # split over these ("cuda:0,cuda:1"); default: every GPU

    def split_devices(self) -> list[str]:
        """The devices a captions step splits over; fewer than two: no split."""
        return worker_devices(self.devices)

    def load(self, project: Project) -> Captioner | None:
        settings = project.recipe.captions
        if settings.captioner != "none":  # hand captions only: no model, no library to quiet
            quiet_libraries()
        if settings.model == "tiny":
            ensure_tiny_captioner(project, settings.captioner)
        return load_captioner(captioner_settings(project, settings, self.device))


class EngineResource(dg.ConfigurableResource):
    """The training engine of `[training] engine`; on the GPU when there is one. With several
    GPUs (or `devices`), cache encoding is split over them, a worker process each."""

    device: str | None = None
    devices: str | None = None  # "cuda:0,cuda:1", "cpu,cpu"; default: every GPU

    def engine(self, project: Project) -> Engine:
        quiet_libraries()
        devices = worker_devices(self.devices)
        if len(devices) > 1:
            return MultiDeviceEngine(project.recipe.training, project.out_dir, devices)
        return create_engine(project.recipe.training, project.out_dir, device=self.device)

    @contextmanager
    def session(self, project: Project) -> Iterator[Engine]:
        """The engine, with a run's termination (SIGTERM/SIGINT) ending its subprocesses first."""
        engine = self.engine(project)
        if threading.current_thread() is not threading.main_thread():
            yield engine
            return
        with cancel_on_signals(engine.cancel):
            yield engine


def build_resources(project_root: str) -> dict:
    return {
        "project": ProjectResource(root=project_root),
        "ffmpeg": FfmpegResource(),
        "captioner": CaptionerResource(),
        "engine": EngineResource(),
        "io_manager": FilesIOManager(),
    }


class FilesIOManager(dg.ConfigurableIOManager):
    """Our assets write their own files under out/; Dagster stores nothing for them."""

    def handle_output(self, context: dg.OutputContext, obj: None) -> None:
        return None

    def load_input(self, context: dg.InputContext) -> None:
        return None
