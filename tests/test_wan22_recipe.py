"""Wan 2.2 settings in wan_lora.toml: mistakes named with the file and the key."""

import pytest

from tests.test_project import MINIMAL, error_for, write
from wan_lora_dagster.project import load_recipe

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_experts_belong_to_the_two_expert_tasks(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "t2v-14B"\nexperts = ["high"]\n')
    assert "wan_lora.toml" in message and "experts is for the two-expert Wan 2.2 tasks" in message
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "t2v-A14B"\nexperts = []\n')
    assert 'list "high", "low" or both' in message


def test_an_expert_has_a_name_and_the_boundary_lies_inside_zero_one(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "i2v-A14B"\nexperts = ["mid"]\n')
    assert "wan_lora.toml:7: training.experts.0" in message
    message = error_for(
        tmp_path, MINIMAL + '[training]\ntask = "i2v-A14B"\ntimestep_boundary = 900\n'
    )
    assert "wan_lora.toml:7: training.timestep_boundary" in message


def test_ti2v_5b_sizes_divide_by_32(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "ti2v-5B"\n')
    assert "ti2v-5B needs sides that are multiples of 32" in message
    assert "'clips_0' resolution [384, 208]" in message
    assert "[eval]" not in message  # its default 64 x 64 divides by 32
    fixed = MINIMAL.replace("[384, 208]", "[384, 224]") + '[training]\ntask = "ti2v-5B"\n'
    assert load_recipe(write(tmp_path, fixed)).training.task == "ti2v-5B"
