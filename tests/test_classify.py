"""Update-rank measures against closed forms; ``dlnref classify`` end to end on small settings."""

import contextlib
import json
import math
import os

import numpy as np
import pytest

from dlnref.cli import main
from dlnref.experiments import classify
from dlnref.nn import mlp
from dlnref.nn.images import load_digits, write_idx
from dlnref.nn.update_rank import captured_energy, energy_fraction, layer_reports, update_rank_measures
from theory_checks import low_rank_updates


def _orthonormal(rng, n, k):
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


def test_energy_fraction_closed_form():
    s = np.array([3.0, 2.0, 1.0, 0.0])
    assert energy_fraction(s, 1) == pytest.approx(9 / 14, rel=1e-15)
    assert energy_fraction(s, 2) == pytest.approx(13 / 14, rel=1e-15)
    assert math.isnan(energy_fraction(np.zeros(3), 1))


@pytest.mark.parametrize("theta", [0.0, 0.3, 1.2])
def test_update_measures_on_a_known_rotation(theta):
    # D(t1) = 2 u v^T + e f^T, D(t2) = 3 u' v^T + 0.5 e f^T with u' = cos(theta) u + sin(theta) w:
    # top-1 left subspaces at angle theta, right ones equal; D(t2)'s top-1 energy 9 / 9.25; of D(t2),
    # the part inside span(u) x span(v) is 3 cos(theta) u v^T.
    rng = np.random.default_rng(0)
    left, right = _orthonormal(rng, 7, 3), _orthonormal(rng, 5, 2)
    u, w, e = left.T
    v, f = right.T
    u_turned = np.cos(theta) * u + np.sin(theta) * w
    w0 = rng.standard_normal((7, 5))
    mid = w0 + 2 * np.outer(u, v) + np.outer(e, f)
    end = w0 + 3 * np.outer(u_turned, v) + 0.5 * np.outer(e, f)
    m = update_rank_measures(w0, mid, end, k=1)
    assert m["left_angle"] == pytest.approx(theta, abs=1e-7)
    assert m["right_angle"] == pytest.approx(0.0, abs=1e-7)
    assert m["energy_top_k"] == pytest.approx(9 / 9.25, rel=1e-12)
    assert m["ratio_k1"] == pytest.approx(0.5 / 3, rel=1e-12)
    assert m["captured"] == pytest.approx(9 * np.cos(theta) ** 2 / 9.25, abs=1e-12)
    assert captured_energy(end - w0, u[:, None], v[:, None]) == pytest.approx(m["captured"], rel=1e-12)
    with pytest.raises(ValueError, match="k must satisfy 1 <= k < min"):
        update_rank_measures(w0, mid, end, k=5)


def test_layer_reports_pick_the_middle_and_the_end():
    rng = np.random.default_rng(1)
    snapshots = [[rng.standard_normal((4, 3))] for _ in range(5)]
    reports = layer_reports(snapshots, [0, 10, 20, 30, 40], [1])
    (r,) = reports
    assert (r["t1"], r["t2"], r["k"]) == (20, 40, 1)
    direct = update_rank_measures(snapshots[0][0], snapshots[2][0], snapshots[4][0], 1)
    assert all(r[key] == direct[key] for key in direct)
    assert math.isnan(r["energy"][0]) and len(r["energy"]) == 5
    np.testing.assert_allclose(r["singular_values"], np.linalg.svd(snapshots[4][0] - snapshots[0][0], compute_uv=False))


SMALL = ["--hidden", "16", "--rank", "2", "--steps", "12", "--record-every", "4", "--quiet"]


def test_classify_json_end_to_end(tmp_path, capsys):
    png = tmp_path / "c.png"
    assert main(["classify", *SMALL, "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert out["data"] == {"name": "digits", "train": out["data"]["train"], "test": out["data"]["test"], "pixels": 64,
                           "classes": 10}
    assert out["data"]["train"] + out["data"]["test"] == 1797
    original, wide, small = out["original"], out["wide"], out["compressed"]
    # Parameters by formula: d_0 h + h K alone; d_0 h + 3 h^2 + h K wide; d_0 h + 2 h w + w^2 + h K compressed (w = 4).
    assert original["params"] == 64 * 16 + 16 * 10
    assert wide["params"] == 64 * 16 + 3 * 16**2 + 16 * 10
    assert small["params"] == 64 * 16 + 2 * 16 * 4 + 4**2 + 16 * 10
    assert original["dims"] == [64, 16, 10]
    assert wide["dims"] == [64, 16, 16, 16, 16, 10] and small["dims"] == [64, 16, 4, 4, 16, 10]
    assert original["steps_run"] == wide["steps_run"] == small["steps_run"] == 12
    for run in (original, wide, small):
        curve = run["curve"]
        assert set(curve) == {"step", "seconds", "test_accuracy"} and curve["step"] == [0, 4, 8, 12]
        assert curve["seconds"][0] >= 0 and all(b >= a for a, b in zip(curve["seconds"], curve["seconds"][1:]))
        assert curve["test_accuracy"][-1] == run["final_test_accuracy"] and curve["seconds"][-1] == run["seconds"]
    assert out["block_gain"] == {name: out[name]["final_test_accuracy"] - original["final_test_accuracy"]
                                 for name in ("wide", "compressed")}
    # The MLP alone at step 0, by hand: argmax of W_2 relu(W_1 x) over the digits' test set.
    images = load_digits()
    W1, W2 = mlp.init_mlp(mlp.mlp_layout(64, 10, 16, block_depth=0), seed=0)
    predicted = np.argmax(W2 @ np.maximum(W1 @ images.test_images.T, 0), axis=0)
    assert original["curve"]["test_accuracy"][0] == pytest.approx(np.mean(predicted == images.test_labels), abs=1e-15)
    assert 0 <= small["final_test_accuracy"] <= 1
    assert out["speedup"]["seconds_per_step"] == pytest.approx(wide["seconds_per_step"] / small["seconds_per_step"])
    assert "history" not in wide


def test_classify_table_epochs_and_spectral_init(capsys):
    assert main(["classify", "--hidden", "16", "--rank", "2", "--epochs", "2", "--batch-size", "500",
                 "--block-init", "spectral", "--record-every", "2", "--no-plot", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "compressed width 4, spectral init" in out and "batches of 500" in out and "preset digits" in out
    assert "  original |" in out and "      wide |" in out and "speedup (wide / compressed)" in out
    assert "the linear block's gain in test accuracy over the MLP alone: wide " in out
    config = classify.ClassifyConfig(epochs=2, batch_size=500).resolved(1438)
    assert config.steps == 2 * 3 and config.width == 20


def _idx_folder(folder):
    """A tiny MNIST-format folder: 40 training and 12 test images of 4 x 4 pixels, 3 classes."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 12)):
        labels = rng.integers(0, 3, n).astype(np.uint8)
        pictures = (rng.random((n, 4, 4)) * 60 + 60 * np.eye(4)[labels % 4][:, :, None]).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", pictures)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def test_classify_reads_an_idx_folder(tmp_path, capsys):
    _idx_folder(tmp_path)
    assert main(["classify", "--data", str(tmp_path), "--hidden", "8", "--rank", "1", "--steps", "5",
                 "--json", "--no-plot", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"]["train"] == 40 and out["data"]["test"] == 12 and out["data"]["pixels"] == 16
    assert out["wide"]["dims"][0] == 16
    assert out["config"]["preset"] == "digits" and out["config"]["lr"] == classify.ClassifyConfig.lr


def test_the_fashion_mnist_preset_holds_the_official_setting():
    preset = classify.PRESETS["fashion-mnist"]
    # Full-batch gradient descent (the official train_cls), no first-layer scale (dlr None), orthogonal init at one
    # scale, the block h -> 2r -> 2r -> h, 1,250 steps recorded every 10 (its figure), the first 2,000 images.
    assert preset["batch_size"] is None and preset["first_lr_scale"] == 1.0 and preset["scale"] == 1.0
    assert (preset["steps"], preset["record_every"], preset["train_images"]) == (1250, 10, 2000)
    assert (preset["hidden"], preset["depth"], preset["rank"], preset["lr"]) == (256, 3, 10, 0.1)
    assert classify.preset_for("/usr/share/datasets/fashion-mnist") == "fashion-mnist"
    assert classify.preset_for("/data/FashionMNIST/raw/") == "fashion-mnist"
    assert classify.preset_for("/data/mnist") == classify.preset_for(None) == "digits"
    config = classify.classify_config("/usr/share/datasets/fashion-mnist", lr=0.05)
    assert config.preset == "fashion-mnist" and config.lr == 0.05 and config.steps == 1250   # options win
    by_epochs = classify.classify_config("/x/fashion", epochs=2).resolved(3000)
    assert by_epochs.steps == 2 and by_epochs.train_images == 2000   # full batch: one step an epoch
    assert classify.classify_config("/x/fashion", preset="digits") == classify.ClassifyConfig(data="/x/fashion",
                                                                                              preset="digits")
    with pytest.raises(ValueError, match="unknown classify option"):
        classify.classify_config(None, hiden=3)


def test_first_training_images_keeps_the_first_and_the_whole_test_set():
    images = load_digits()
    first = classify.first_training_images(images, 100)
    np.testing.assert_array_equal(first.train_images, images.train_images[:100])
    np.testing.assert_array_equal(first.train_labels, images.train_labels[:100])
    assert first.test_images is images.test_images
    assert classify.first_training_images(images, 10**6) is images and classify.first_training_images(images, None) is images


def test_a_fashion_folder_takes_the_preset_says_so_and_draws_a_progress_bar(tmp_path, capsys):
    folder = _idx_folder(tmp_path / "fashion-tiny")
    assert main(["classify", "--data", str(folder), "--hidden", "8", "--rank", "1", "--steps", "20", "--json",
                 "--no-plot"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    c = out["config"]
    assert c["preset"] == "fashion-mnist" and c["lr"] == 0.1 and c["record_every"] == 10 and c["batch_size"] is None
    assert c["train_images"] == 2000 and out["data"]["train"] == 40   # fewer than 2,000: all of them
    assert out["original"]["curve"]["step"] == [0, 10, 20]
    assert "preset fashion-mnist: trains on the first 2,000 of the 60,000 training images" in captured.err
    assert "[original 1/3] |" in captured.err and "[compressed 3/3] |" + "#" * 30 + "| 100% step 20/20" in captured.err
    assert main(["classify", "--data", str(folder), "--hidden", "8", "--rank", "1", "--steps", "2", "--json",
                 "--train-images", "25", "--no-plot"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["data"]["train"] == 25 and "preset fashion-mnist:" not in captured.err


@pytest.mark.parametrize("argv, message", [
    (["--steps", "5", "--epochs", "2"], "not allowed with argument"),
    (["--block-init", "exact"], "invalid choice"),
    (["--data", "/nonexistent/fashion"], "does not exist"),
    (["--data", __file__], f"{__file__} is a file, not a folder: give the folder that holds train-images-idx3-ubyte"),
    (["--width", "40", "--hidden", "16"], "the compressed block's width (--width 40) exceeds --hidden 16"),
    (["--hidden", "16"], "the compressed block's width (2 * --rank = 20) exceeds --hidden 16, the width of the "
                         "block's ends; use a width of at most 16, or a larger --hidden"),
    (["--hidden", "0"], "--hidden must be >= 1, got 0"),
    (["--train-images", "0"], "--train-images must be >= 1, got 0"),
    (["--preset", "mnist"], "argument --preset: invalid choice: 'mnist'"),
    (["--lr", "0"], "--lr must be a finite number > 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--target-accuracy", "2"], "--target-accuracy must lie in (0, 1], got 2.0"),
    (["--plot", ""], "--plot '' is empty; give a file name, such as figure.png"),
    (["--plot", "results.txt"], "--plot results.txt: unknown file type .txt"),
])
def test_classify_bad_usage_exits_2_before_training(argv, message, capsys):
    code = main(["classify", *argv, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert message in err


def test_classify_writes_no_figure_unasked_and_prints_before_drawing(tmp_path, capsys, monkeypatch):
    with contextlib.chdir(tmp_path):
        assert main(["classify", "--hidden", "32", "--rank", "2", "--steps", "3", "--quiet"]) == 0
    assert os.listdir(tmp_path) == [] and "wide |" in capsys.readouterr().out

    def full_disk(result, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("dlnref.nn.plots.plot_classify", full_disk)
    code = main(["classify", "--hidden", "32", "--rank", "2", "--steps", "3", "--quiet", "--json",
                 "--plot", str(tmp_path / "f.png")])
    out, err = capsys.readouterr()
    assert code == 2 and json.loads(out)["plot"] == str(tmp_path / "f.png")   # the results came first
    assert err.strip() == f"dlnref classify: error: No space left on device: {tmp_path / 'f.png'}"


def test_a_diverging_classify_run_exits_1(capsys):
    code = main(["classify", "--hidden", "32", "--rank", "2", "--steps", "5", "--lr", "1e6", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "the original MLP diverged: the loss is" in err and "at step 1 (lr=1e+06)" in err   # the first model
    assert "Try a smaller --lr (say 500000)" in err


def test_low_rank_updates_check_reports_every_layer():
    verdict = low_rank_updates.check("quick")
    config = classify.UPDATE_RANK_SETUPS["quick"]
    assert len(verdict.findings) == config.relu_layers + config.depth + 1
    for finding in verdict.findings:
        m = finding.measured
        assert not finding.exact
        assert finding.holds == (m["energy_top_k"] >= 0.9 and m["captured"] >= 0.9)
        assert 0 < m["energy_top_k"] <= 1 + 1e-12 and 0 <= m["left_angle"] <= math.pi / 2 + 1e-12
    # The output layer's update has rank <= K - 1: its columns are orthogonal to the all-ones vector.
    assert verdict.findings[-1].measured["k"] == 9
    assert verdict.findings[-1].measured["ratio_k1"] < 1e-10


def test_the_fashion_mnist_preset_needs_its_data(capsys):
    assert main(["classify", "--preset", "fashion-mnist", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--preset fashion-mnist needs --data DIR" in err and "Traceback" not in err


def test_no_step_has_no_rate(capsys):
    """``--steps 0``: nothing ran, so there is no time per step and no speedup per step to print."""
    assert main(["classify", "--hidden", "16", "--rank", "2", "--steps", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert all(result[name]["seconds_per_step"] is None for name in ("original", "wide", "compressed"))
    assert result["speedup"]["seconds_per_step"] is None
