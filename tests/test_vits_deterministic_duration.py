"""Training with VITS's deterministic duration predictor (`use_stochastic_duration_prediction=False`)."""

import math

import torch
from transformers import VitsModel

from kurdish_tts.data.collators import DataCollatorForVits
from kurdish_tts.models.vits import VitsForTraining
from kurdish_tts.models.vits.modeling_vits_training import log_duration_squared_error


def deterministic_tiny(tokenizer, seed=0):
    torch.manual_seed(seed)
    return VitsForTraining.from_size("tiny", tokenizer.vocab_size, use_stochastic_duration_prediction=False)


def test_the_loss_is_the_squared_log_duration_error_over_real_tokens(tokenizer):
    predictor = deterministic_tiny(tokenizer).vits.duration_predictor
    # A predictor that says log-duration 1.0 everywhere: zero projection weights, bias 1.
    with torch.no_grad():
        predictor.proj.weight.zero_()
        predictor.proj.bias.fill_(1.0)
    hidden = torch.randn(2, predictor.conv_1.in_channels, 4)
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]], [[1.0, 1.0, 0.0, 0.0]]])
    durations = torch.tensor([[[2.0, 1.0, 0.0, 0.0]], [[5.0, 3.0, 0.0, 0.0]]])
    error = log_duration_squared_error(predictor.eval(), hidden, mask, None, durations)
    zero = math.log(1e-6)  # a token the alignment gave no frame
    expected = torch.tensor(
        [
            (1 - math.log(2)) ** 2 + (1 - math.log(1)) ** 2 + (1 - zero) ** 2,
            (1 - math.log(5)) ** 2 + (1 - math.log(3)) ** 2,
        ]
    )
    torch.testing.assert_close(error, expected)


def test_training_forward_trains_the_deterministic_predictor(tiny_demo, tokenizer):
    model = deterministic_tiny(tokenizer)
    assert type(model.vits.duration_predictor).__name__ == "VitsDurationPredictor"
    collator = DataCollatorForVits(hop_length=model.mel_config.hop_length, min_frames=model.segment_frames)
    batch = collator([tiny_demo.with_format("numpy")[i] for i in (0, 1, 2)])
    batch = {key: value for key, value in batch.items() if key != "sample_ids"}
    output = model(**batch)
    # The loss is per token, from the alignment's durations.
    assert torch.isfinite(output.duration_loss) and output.duration_loss > 0
    assert torch.allclose(output.durations.sum(1), batch["mel_lengths"].float())
    output.duration_loss.backward()
    grads = [p.grad for p in model.vits.duration_predictor.parameters()]
    assert all(grad is not None and grad.abs().sum() > 0 for grad in grads)
    # Like the stochastic predictor, it does not train the text encoder.
    assert all(p.grad is None for p in model.vits.text_encoder.parameters())


def test_learned_durations_set_the_length_of_stock_inference(tokenizer):
    """Fit the predictor to 6 frames per token, then `VitsModel` itself (as `pipeline` runs it) speaks 6 frames per
    token: the collapse to one frame per token that the stochastic predictor showed from scratch cannot come from the
    deterministic one once it has learned the durations."""
    model = deterministic_tiny(tokenizer)
    vits = model.vits.eval()  # no dropout: the fit sees the hidden states inference will
    ids = torch.tensor([tokenizer("ez diçim malê").input_ids])
    mask = torch.ones(1, 1, ids.shape[1])
    hidden = vits.text_encoder(ids, padding_mask=mask.transpose(1, 2)).last_hidden_state.transpose(1, 2).detach()
    # 5.5: inference rounds up, so a fit within a few percent gives 6 frames for every token.
    durations = torch.full((1, 1, ids.shape[1]), 5.5)
    optimizer = torch.optim.Adam(vits.duration_predictor.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        loss = log_duration_squared_error(vits.duration_predictor, hidden, mask, None, durations).sum()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-2 * ids.shape[1]

    with torch.no_grad():
        waveform = VitsModel.forward(vits, input_ids=ids).waveform
    hop = model.mel_config.hop_length
    assert waveform.shape[-1] == 6 * ids.shape[1] * hop
