"""While the project has errors, its partitions are only added to: a mistyped line must not
retire the clip it hides, nor move that clip's hand-written caption away."""

import dagster as dg

from wan_lora_dagster.assets.partitioned import CLIP_PARTITIONS
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.project import open_project
from wan_lora_dagster.resources import build_resources
from wan_lora_dagster.runner import ProjectRunner
from wan_lora_dagster.scaffold import init_project


def test_a_mistyped_line_keeps_its_partition_and_caption_until_it_is_fixed(tmp_path):
    root = init_project(tmp_path / "project")
    make_synthetic_film(root / "films" / "shots.mp4", duration=3, size=(64, 48), num_scenes=1)
    ranges = root / "ranges" / "shots.txt"
    ranges.write_text("0 1 keep\n1 2 other\n")
    caption = root / "captions" / "keep.txt"
    caption.write_text("my own words\n")
    removed_caption = root / "captions" / "other.txt"
    removed_caption.write_text("words of a clip whose range goes\n")
    runner = ProjectRunner(open_project(root))
    runner.sync()
    batches = runner.instance.get_dynamic_partitions(CLIP_PARTITIONS.name)

    ranges.write_text("0 1x keep\n")  # a typo, and `other` removed
    catalog = runner.sync()

    assert [str(problem) for problem in catalog.problems.errors] == [
        f"{ranges}:1: '1x' is not a time (use seconds like 12.5 or [HH:]MM:SS[.mmm])"
    ]
    assert catalog.clip_ids == []
    assert runner.instance.get_dynamic_partitions(CLIP_PARTITIONS.name) == batches
    assert caption.read_text() == "my own words\n"
    assert removed_caption.read_text() == "words of a clip whose range goes\n"
    sensor = runner.defs.resolve_sensor_def("project_files_sensor")
    resources = build_resources(str(root))
    with dg.build_sensor_context(instance=runner.instance, resources=resources) as context:
        tick = sensor.evaluate_tick(context)
    assert f"{ranges}:1: '1x' is not a time" in tick.skip_message, "the UI shows it too"

    ranges.write_text("0 1 keep\n")
    catalog = runner.sync()

    assert catalog.clip_ids == ["keep"]
    assert caption.read_text() == "my own words\n"
    assert not removed_caption.exists(), "a range removed once the file reads is retired"
    assert (root / "captions" / "_orphaned" / "other.txt").is_file()
