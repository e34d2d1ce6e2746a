import pytest
import torch

from wan_lora_dagster.engines.flow_matching import (
    FlowMatchingBatch,
    flow_matching_loss,
    pad_text_embeddings,
)

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_text_is_zero_padded_to_512_tokens():
    short, long = torch.ones(3, 8), torch.ones(600, 8)

    padded = pad_text_embeddings([short, long])

    assert padded.shape == (2, 512, 8)
    assert padded[0, :3].eq(1).all() and padded[0, 3:].eq(0).all()
    assert padded[1].eq(1).all()  # truncated to 512, as the tokenizer would have


class RecordingTransformer:
    """Stands in for the DiT: records what it was given and predicts a fixed velocity."""

    def __init__(self, prediction: torch.Tensor):
        self.prediction = prediction
        self.calls = []

    def __call__(self, **inputs):
        self.calls.append(inputs)
        return (self.prediction,)


def test_the_model_sees_the_interpolated_latent_at_t_times_1000_and_learns_the_velocity():
    latents, noise = torch.full((1, 4, 2, 2, 2), 2.0), torch.full((1, 4, 2, 2, 2), -1.0)
    batch = FlowMatchingBatch(latents=latents, text=torch.zeros(1, 512, 8))
    transformer = RecordingTransformer(prediction=noise - latents)

    loss = flow_matching_loss(transformer, batch, noise, torch.tensor([0.25]), torch.float32)

    [inputs] = transformer.calls
    torch.testing.assert_close(inputs["hidden_states"], 0.75 * latents + 0.25 * noise)
    torch.testing.assert_close(inputs["timestep"], torch.tensor([250.0]))
    assert loss.item() == 0.0  # a perfect velocity prediction
    transformer.prediction = torch.zeros_like(latents)
    assert flow_matching_loss(transformer, batch, noise, torch.tensor([0.25]), torch.float32) == 9.0
