"""Training, inference and checkpoints."""

import pytest
import torch

from blockrecon.seg import (
    build_model,
    evaluate_labels,
    load_model,
    load_weights,
    predict,
    save_model,
    train_segmentation,
)


def test_tiny_training_run_increases_dice_substantially(tiny_data, tiny_trained):
    model, untrained, history = tiny_trained
    xt, yt = tiny_data[2:]
    before = evaluate_labels(predict(untrained, xt), yt, 4)["dice"]
    after = evaluate_labels(predict(model, xt), yt, 4)["dice"]
    assert history[-1] < 0.5 * history[0]
    assert after[2] > 0.8 and after[2] > before[2] + 0.5  # LV blood pool
    assert sum(after) / 3 > sum(before) / 3 + 0.2


def test_predict_handles_sizes_not_divisible_by_the_stride(tiny_trained, tiny_data):
    model = tiny_trained[0]
    x = tiny_data[2][:2, :, :62, :59]
    full = predict(model, tiny_data[2][:2])
    out = predict(model, x)
    assert out.shape == (2, 62, 59) and out.dtype == torch.int64
    assert (out == full[:, :62, :59]).float().mean() > 0.95


def test_training_rejects_bad_input():
    model = build_model(base_width=2, depth=2)
    x = torch.zeros(2, 1, 16, 16)
    with pytest.raises(ValueError, match="label values"):
        train_segmentation(model, x, torch.full((2, 16, 16), 4), epochs=1)
    with pytest.raises(ValueError, match="labels must be int64"):
        train_segmentation(model, x, torch.zeros(2, 16, 15, dtype=torch.int64), epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        predict(model, torch.full((1, 1, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="images must be"):
        predict(model, torch.zeros(16, 16))


def test_checkpoint_round_trip_and_architecture_mismatch(tmp_path, tiny_trained, tiny_data):
    model = tiny_trained[0]
    path = save_model(tmp_path / "m.pt", model, extra={"note": "x"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind
    loaded, _, extra = load_model(path)
    assert extra == {"note": "x"} and loaded.config == model.config
    x = tiny_data[2][:2]
    assert torch.equal(predict(loaded, x), predict(model, x))
    other = build_model(base_width=4, depth=2)
    with pytest.raises(ValueError, match="architecture differs.*depth"):
        load_weights(other, path)
    assert load_weights(build_model(base_width=4, depth=3), path).config == model.config


def test_checkpoint_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a blockrecon segmentation checkpoint: .*junk.pt"):
        load_model(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a blockrecon segmentation checkpoint"):
        load_model(tmp_path / "other.pt")
    model = build_model(base_width=2, depth=2)
    payload = {
        "format": "blockrecon.seg.unet/1",
        "config": model.config,
        "extra": {},
        "state_dict": {**model.state_dict(), "head.weight": torch.zeros(4, 3, 1, 1)},
    }
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="architecture mismatch at head.weight"):
        load_model(tmp_path / "bad.pt")
