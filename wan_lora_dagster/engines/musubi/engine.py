"""The `musubi` engine: kohya-ss/musubi-tuner's Wan 2.1 scripts, driven as subprocesses.

Each call writes musubi's dataset config for exactly the items it is given, runs one script in
its own process group (see process.py), streams its lines to `on_output` and reads progress from
them. The graph owns the caches: musubi is never let delete one (--keep_cache) nor reuse a stale
one (the files of the items to encode are removed first: musubi decides by file name only).
"""

from __future__ import annotations

import collections
import logging
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from wan_lora_dagster.engines import experts
from wan_lora_dagster.engines.base import (
    CheckpointInfo,
    LatentJob,
    Progress,
    ProgressCallback,
    SampleRequest,
    SampleVideo,
    TextJob,
    TrainRequest,
)
from wan_lora_dagster.engines.eval_plan import EvalJob, plain_jobs
from wan_lora_dagster.engines.gpus import resolve_gpus
from wan_lora_dagster.engines.musubi import arguments, dataset_toml, hub, preflight, sampling
from wan_lora_dagster.engines.musubi.checkpoints import CheckpointLander
from wan_lora_dagster.engines.musubi.locate import MusubiInstall, find_musubi
from wan_lora_dagster.engines.musubi.process import CancelToken, run_command
from wan_lora_dagster.engines.musubi.progress import TrainingLog, saved_video
from wan_lora_dagster.engines.musubi.resume import SegmentOptions, plan_segment, segment_dir
from wan_lora_dagster.engines.musubi.training_run import finish_run, next_launch
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import text_cache_name
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import wan_task

logger = logging.getLogger(__name__)

Command = list[str]
OUTPUT_TAIL_LINES = 40
CACHE_PROGRESS_SECONDS = 2.0  # a cache folder may hold 30,000 files: list it now and then


def format_commands(commands: Sequence[Command]) -> str:
    """Commands as shell lines, one a line, to paste into a terminal (POSIX quoting)."""
    return "\n".join(shlex.join(command) for command in commands)


class MusubiEngine:
    """engines.base.Engine on kohya-ss/musubi-tuner (a clone at [training] musubi_dir, or an
    installed `musubi_tuner`), with real weights given as paths (dit, vae, t5; clip for I2V).

    work_dir: where its dataset configs, item lists, staging links and run journals go (the graph
    passes out/musubi/). python: the interpreter that runs musubi. on_output: gets every line the
    scripts print (default: this module's logger).
    """

    name = "musubi"

    def __init__(
        self,
        settings: TrainingSettings,
        work_dir: Path,
        python: str = sys.executable,
        *,
        on_output: Callable[[str], None] | None = None,
    ):
        self.settings = settings
        self.work_dir = Path(work_dir).resolve()
        self.python = python
        self.on_output = on_output or (lambda line: logger.info("%s", line))
        self._cancel = CancelToken()
        self._install: MusubiInstall | None = None
        self._checked = False
        self._evaluator = None

    def cancel(self) -> None:
        """End the script now running, with all its process group; safe from any thread."""
        self._cancel.cancel()

    @property
    def install(self) -> MusubiInstall:
        if self._install is None:
            self._install = find_musubi(self.settings.musubi_dir, self.python)
        return self._install

    def check(self) -> None:
        if self._checked:
            return
        arguments.check_settings(self.settings)
        preflight.check_weights(self.settings)
        arguments.check_dit_precision(self.settings, Path(self.settings.dit))
        logger.debug("musubi-tuner scripts in %s", self.install.package_dir)
        preflight.check_environment(self.python, self.settings)
        self._tokenizer_environment()
        self._checked = True

    def plan(
        self,
        request: TrainRequest,
        latent_jobs: Sequence[LatentJob] = (),
        text_jobs: Sequence[TextJob] = (),
    ) -> list[Command]:
        """Dry run: write the configs and return every command as train() etc. would run it.

        Caches not made yet are linked all the same, so the commands run in the order given.
        """
        self.check()
        commands = []
        if latent_jobs:
            commands.append(self._latent_cache_command(latent_jobs))
        if text_jobs:
            commands.append(self._text_cache_command(text_jobs))
        boundary = experts.timestep_boundary(request.settings)
        for run_request in experts.expert_requests(request, boundary) or [request]:
            run_dir = self._run_dir(run_request)
            config = dataset_toml.training_config(run_request, run_dir, require_files=False)
            segment = plan_segment(run_request.settings, steps_per_epoch=None)
            folder = segment_dir(run_dir, 0)
            commands.append(self._training_command(run_request, config, folder, segment))
        return commands

    def encode_latents(
        self, jobs: Sequence[LatentJob], progress: ProgressCallback
    ) -> dict[str, list[Path]]:
        self.check()
        missing = [str(job.media_path) for job in jobs if not job.media_path.is_file()]
        if missing:
            raise EngineError(f"{missing[0]}: media to encode not found ({len(missing)} missing)")
        for job in jobs:
            for stale in dataset_toml.latent_files(job.cache_dir, job.item_id):
                stale.unlink()
        command = self._latent_cache_command(jobs)

        def count() -> int:
            present = {
                folder: dataset_toml.latent_items(folder)
                for folder in {job.cache_dir for job in jobs}
            }
            return sum(job.item_id in present[job.cache_dir] for job in jobs)

        self._run_with_file_progress(command, "latents", len(jobs), count, progress)
        written: dict[str, list[Path]] = {}
        for job in jobs:  # an item has files in each of its sections' folders
            found = dataset_toml.latent_files(job.cache_dir, job.item_id)
            written.setdefault(job.item_id, []).extend(found)
        return written

    def encode_texts(self, jobs: Sequence[TextJob], progress: ProgressCallback) -> dict[str, Path]:
        self.check()
        expected = {job.item_id: job.cache_dir / text_cache_name(job.item_id) for job in jobs}
        for path in expected.values():
            path.unlink(missing_ok=True)
        command = self._text_cache_command(jobs)

        def count() -> int:
            return sum(path.is_file() for path in expected.values())

        self._run_with_file_progress(command, "texts", len(jobs), count, progress)
        missing = [str(path) for path in expected.values() if not path.is_file()]
        if missing:
            raise EngineError(f"wan_cache_text_encoder_outputs did not write {missing[:3]}")
        return expected

    def train(
        self,
        request: TrainRequest,
        progress: ProgressCallback,
        on_checkpoint: Callable[[CheckpointInfo], None],
    ) -> list[CheckpointInfo]:
        """Train, or continue an interrupted run of the same request from its last saved state.

        Returns the checkpoints landed by this call; on_checkpoint hears of each as it lands.
        Wan 2.2 A14B: one musubi run per chosen expert (musubi/experts.py says why).
        """
        return experts.train_per_expert(self._train_one, request, progress, on_checkpoint)

    def _train_one(
        self,
        request: TrainRequest,
        progress: ProgressCallback,
        on_checkpoint: Callable[[CheckpointInfo], None],
    ) -> list[CheckpointInfo]:
        self.check()
        arguments.check_settings(request.settings)
        run_dir = self._run_dir(request)
        config = dataset_toml.training_config(request, run_dir)
        launch = next_launch(request, run_dir, on_checkpoint)
        if launch.resumed is not None:
            progress(
                Progress("train", launch.start_step, launch.start_step, resumed=launch.resumed)
            )
        command = self._training_command(request, config, launch.folder, launch.options)
        log = TrainingLog(launch.start_step)
        lander = CheckpointLander(request, launch.journal, log, on_checkpoint)

        def on_line(line: str) -> None:
            report = log.read(line)
            journal = launch.journal
            if log.steps_per_epoch and journal.steps_per_epoch != log.steps_per_epoch:
                journal.steps_per_epoch = log.steps_per_epoch  # a resume needs it
                journal.save()
            if report:
                progress(report)

        self._run(command, on_line=on_line, on_tick=lander.poll)
        lander.poll(finished=True)
        finish_run(launch.journal)
        return launch.landed + lander.landed

    def sample(self, request: SampleRequest, progress: ProgressCallback) -> list[SampleVideo]:
        """One wan_generate_video run per strength, over a prompt file of every prompt x seed
        (x start image, image-to-video)."""
        self.check()
        sampling.check_sampling(self.settings, request)
        jobs = plain_jobs(request.settings, request.start_images)
        videos: list[SampleVideo] = []
        for strength, group in sampling.by_strength(jobs).items():
            saved = self._generate(request, strength, group)
            for job, path in zip(group, saved, strict=True):
                target = request.output_dir / job.file_name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
                videos.append(SampleVideo(target, job.prompt, strength, job.seed, job.start_image))
            progress(Progress("sample", len(videos), len(jobs)))
        return videos

    def validation_loss(
        self, checkpoint: Path | None, manifest: TrainingSetManifest, settings: TrainingSettings
    ) -> float:
        """Computed in this process (musubi-tuner has none): see musubi/validation.py."""
        if self._evaluator is None:
            from wan_lora_dagster.engines.musubi.validation import MusubiEvaluator  # torch

            self._evaluator = MusubiEvaluator(self.settings, self.work_dir / "validation")
        return self._evaluator.loss(checkpoint, manifest)

    # commands

    def _latent_cache_command(self, jobs: Sequence[LatentJob]) -> Command:
        groups: dict[tuple[str, Path], list[LatentJob]] = {}
        for job in jobs:
            groups.setdefault((job.section.name, job.cache_dir), []).append(job)
        media_dir = self.work_dir / "cache" / "media"
        datasets = [
            dataset_toml.section_group(
                members[0].section,
                cache_dir,
                (
                    dataset_toml.media_row(
                        job.section,
                        dataset_toml.named_media(job.item_id, job.media_path, media_dir / name),
                    )
                    for job in members
                ),
            )
            for (name, cache_dir), members in groups.items()
        ]
        config = dataset_toml.write_dataset_config(
            self.work_dir / "cache" / "latents.toml", datasets
        )
        return self._script(
            "wan_cache_latents",
            arguments.latent_cache_args(self.settings, config),
            self._tokenizer_environment() if self._uses_clip else {},
        )

    def _text_cache_command(self, jobs: Sequence[TextJob]) -> Command:
        by_folder: dict[Path, dict[str, str]] = {}
        for job in jobs:
            by_folder.setdefault(job.cache_dir, {})[job.item_id] = job.text
        datasets = [
            dataset_toml.caption_group(folder.name, folder, captions)
            for folder, captions in by_folder.items()
        ]
        config = dataset_toml.write_dataset_config(self.work_dir / "cache" / "texts.toml", datasets)
        return self._script(
            "wan_cache_text_encoder_outputs",
            arguments.text_cache_args(self.settings, config),
            self._tokenizer_environment(),
        )

    def _training_command(
        self, request: TrainRequest, config: Path, folder: Path, segment: SegmentOptions
    ) -> Command:
        """request.settings shape the run (they are the recipe's, as the diffusers engine's)."""
        expert = (request.expert, request.timestep_range)
        script_args = arguments.training_args(
            request.settings, config, folder, request.output_name, segment, request.log_dir, *expert
        )
        launch = arguments.accelerate_launch(
            self.python,
            request.settings.mixed_precision,
            self.install.script("wan_train_network"),
            script_args,
            resolve_gpus(request.settings),
        )
        return arguments.with_environment(launch, self.install.environment())

    def _script(self, name: str, script_args: list[str], environment: dict[str, str]) -> Command:
        command = [self.python, str(self.install.script(name)), *script_args]
        return arguments.with_environment(command, {**self.install.environment(), **environment})

    # running

    def _run(
        self,
        command: Command,
        on_line: Callable[[str], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)

        def handle(line: str) -> None:
            tail.append(line)
            self.on_output(line)
            if on_line:
                on_line(line)

        self.work_dir.mkdir(parents=True, exist_ok=True)
        status = run_command(command, handle, self._cancel, on_tick, cwd=self.work_dir)
        if status != 0:
            raise EngineError(
                hub.script_failure_message(command, status, list(tail), self._uses_clip)
            )

    def _run_with_file_progress(
        self,
        command: Command,
        stage: str,
        total: int,
        count: Callable[[], int],
        progress: ProgressCallback,
    ) -> None:
        """Progress as the number of items whose files exist (musubi's bars count batches)."""
        started = time.monotonic()
        last = {"time": started, "done": 0}

        def tick() -> None:
            now = time.monotonic()
            if now - last["time"] < CACHE_PROGRESS_SECONDS:
                return
            last["time"], done = now, count()
            if done != last["done"]:
                last["done"] = done
                progress(Progress(stage, done, total, (now - started) / max(done, 1)))

        self._run(command, on_tick=tick)
        progress(Progress(stage, total, total, (time.monotonic() - started) / max(total, 1)))

    def _generate(self, request: SampleRequest, strength: float, jobs: list[EvalJob]) -> list[Path]:
        folder = self.work_dir / "samples" / request.checkpoint.stem / f"strength{strength:.2f}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        prompt_file = folder / "prompts.txt"
        images = sampling.stage_images(request.start_images, folder / "images")
        prompt_file.write_text(sampling.prompt_file_text(jobs, images), encoding="utf-8")
        generation = arguments.generation_args(
            self.settings, request.settings, prompt_file, folder, request.checkpoint, strength
        )
        command = self._script("wan_generate_video", generation, self._tokenizer_environment())
        saved: list[Path] = []

        def on_line(line: str) -> None:
            path = saved_video(line)
            if path:
                saved.append(path)

        self._run(command, on_line=on_line)
        sampling.check_saved(saved, jobs, prompt_file)
        return saved

    # checks and paths

    @property
    def _uses_clip(self) -> bool:
        """The task's caches hold CLIP features: its scripts load the CLIP tokenizer too."""
        return wan_task(self.settings.task).clip

    def _tokenizer_environment(self) -> dict[str, str]:
        return hub.offline_environment(
            self.settings.tokenizer, self.work_dir / "hub-cache", self._uses_clip
        )

    def _run_dir(self, request: TrainRequest) -> Path:
        return self.work_dir / "train" / request.output_name
