"""The evaluation group: eval videos and a validation loss per checkpoint, and the best LoRA."""

import dagster as dg

from wan_lora_dagster.assets.declared import declared
from wan_lora_dagster.assets.metadata import image_markdown
from wan_lora_dagster.assets.partitioned import emit, make_each, step_decision
from wan_lora_dagster.instance.claims import one_maker
from wan_lora_dagster.pipeline import evaluation as domain
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.progress import ProgressThrottle
from wan_lora_dagster.resources import EngineResource, ProjectResource


@dg.asset(
    **declared("eval_videos"),
    code_version=domain.EVAL_CODE_VERSION,
    output_required=False,
    description="Per checkpoint: one video per eval prompt x LoRA strength x seed (strength 0 is "
    "the base model; an I2V LoRA's start from each held-out clip's first frame and [eval] "
    "images), the [eval] walk, a contact sheet, and the held-out validation loss with fixed "
    "noise and timesteps, with and without the LoRA (musubi's checkpoints measured in-process).",
)
@one_maker
def eval_videos(
    context: dg.AssetExecutionContext, project: ProjectResource, engine: EngineResource
):
    catalog = project.catalog()
    expectations = Expectations(catalog)
    keys = context.partition_keys
    fresh = set(step_decision(context, catalog, "eval_videos", keys, expectations).fresh)
    stale = [key for key in keys if key not in fresh]
    progress = ProgressThrottle("eval_videos", context.log.info)
    with engine.session(catalog.project) as model:
        outcome = make_each(
            "eval_videos",
            stale,
            lambda key: domain.evaluate_checkpoint(
                catalog, key, model, expectations.manifest, progress
            ),
            context.log,
        )
    outcome.skipped = [key for key in keys if key in fresh]

    def metadata(key: str, record: domain.EvalRecord) -> dict:
        return {
            "validation_loss": record.validation_loss,
            "validation_loss_without_lora": record.validation_loss_base,
            "videos": len(record.videos),
            "contact_sheet": image_markdown(
                catalog.project.root / record.contact_sheet, f"eval of {key}"
            ),
        }

    yield from emit(context, outcome, catalog.records, metadata)


@dg.asset(
    **declared("best_lora"),
    code_version=domain.BEST_CODE_VERSION,
    description="The checkpoint with the lowest validation loss (or `[eval] pin`), exported as "
    "out/best/adapter_model.safetensors for ComfyUI, musubi-tuner and diffusers (a full "
    "fine-tune: the model, out/best/model/ for diffusers and out/best/wan_model.safetensors for "
    "ComfyUI), with a plot of every checkpoint's loss.",
)
@one_maker
def best_lora(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.Output:
    catalog = project.catalog()
    expectations = Expectations(catalog)
    plan = expectations.plan
    keys = list(plan.keys)
    versions = [catalog.records.read("eval_videos", key).data_version for key in keys]
    record = domain.export_best(catalog, domain.choose_best(catalog, keys), keys, versions)
    plot = record.validation_loss_plot
    return dg.Output(
        None,
        data_version=dg.DataVersion(record.data_version),
        metadata={
            "checkpoint": record.checkpoint,
            "file": dg.MetadataValue.path(str(catalog.project.root / record.file)),
            "validation_loss": record.validation_loss,
            "validation_loss_without_lora": record.validation_loss_base,
            **(
                {"validation_loss_plot": image_markdown(catalog.project.root / plot, "losses")}
                if plot
                else {}
            ),
        },
    )
