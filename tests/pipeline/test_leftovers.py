"""A killed attempt's temporaries go once their partitions are made; nothing else is touched."""

from wan_lora_dagster.pipeline.leftovers import remove_leftovers


def test_only_the_temporaries_of_the_made_partitions_go(tmp_path):
    out = tmp_path / "out"
    files = {
        "clips/.c1.4242.partial.mp4": True,  # ffmpeg's cut, killed
        "thumbnails/.c1.4242.partial.png": True,
        "cache/text/.c1_wan_te.safetensors.x7f3.tmp": True,
        "cache/motion/.c1_00000-009_0032x0032_wan.safetensors.a1b2.tmp": True,
        "records/clips/.c1.json.k2j4": True,  # a record's atomic write
        "clips/c1.mp4": False,  # finished files stay
        "records/clips/c1.json": False,
        "clips/.c2.77.partial.mp4": False,  # another partition's, perhaps being written now
        "clips/.notes.txt": False,  # not a temporary
    }
    for name in files:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")

    removed = remove_leftovers(out, ["c1"])

    assert sorted(path.relative_to(out).as_posix() for path in removed) == sorted(
        name for name, goes in files.items() if goes
    )
    assert all((out / name).exists() != goes for name, goes in files.items())
