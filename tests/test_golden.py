import json

import numpy as np

from dlnref.cli import main
from dlnref.oracle import golden


def test_export_then_verify(tmp_path, capsys):
    assert main(["golden", "export", str(tmp_path)]) == 0
    assert main(["golden", "verify", str(tmp_path)]) == 0
    assert "golden files verified" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["cases"]) == {"factorization", "completion", "sensing"}
    assert manifest["dlnref_version"] and manifest["conventions"]["layer_order"].startswith("weights = [W_1")


def test_files_are_plain_npz_with_the_documented_layout(tmp_path):
    golden.export(tmp_path)
    with np.load(tmp_path / "completion.npz") as f:  # no allow_pickle: plain arrays only
        L = 3
        assert f["wide_X"].shape == (len(golden.STEPS), 8, 6) and f["mask"].dtype == bool
        # Independent check of the layout: X at step 0 is the product of the stored initial layers.
        W = [f[f"wide_init_W{l}"] for l in range(1, L + 1)]
        np.testing.assert_allclose(f["wide_X"][0], W[2] @ W[1] @ W[0], rtol=1e-14)
        Wf = [f[f"compressed_final_W{l}"] for l in range(1, L + 1)]
        np.testing.assert_allclose(f["compressed_X"][-1], Wf[2] @ Wf[1] @ Wf[0], rtol=1e-14)
        assert f["config_json"].dtype == np.uint8  # UTF-8 bytes, which C++ readers (cnpy) take as they are
        assert json.loads(f["config_json"].tobytes().decode("utf-8"))["config"]["problem"] == "completion"
        assert np.all(np.diff(f["compressed_loss"]) < 0)


def test_flipped_byte_is_reported_by_file(tmp_path, capsys):
    golden.export(tmp_path)
    path = tmp_path / "sensing.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert main(["golden", "verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL sensing.npz: SHA-256" in out and "corrupted or was edited" in out
    assert "factorization.npz" not in out


def _edit_with_fixed_hash(directory, case, edit):
    """Edit one array of a case and update the manifest's hash, as a careful forger would."""
    path = directory / f"{case}.npz"
    with np.load(path) as f:
        arrays = dict(f)
    edit(arrays)
    np.savez(path, **arrays)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["cases"][case]["sha256"] = golden.sha256(path)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return golden.verify(directory)


def test_edited_numbers_with_a_fixed_hash_are_recomputed(tmp_path):
    golden.export(tmp_path)
    problems = _edit_with_fixed_hash(tmp_path, "factorization",
                                     lambda a: a.update(wide_final_W2=a["wide_final_W2"] * (1 + 1e-6)))
    assert len(problems) == 1 and problems[0].startswith("factorization.npz: array wide_final_W2 differs")


def test_flipped_mask_entry_is_a_verification_failure(tmp_path, capsys):
    golden.export(tmp_path)

    def flip(arrays):
        arrays["mask"] = arrays["mask"].copy()
        arrays["mask"][0, 0] = ~arrays["mask"][0, 0]

    assert _edit_with_fixed_hash(tmp_path, "completion", flip) == ["completion.npz: array mask differs from a fresh "
                                                                   "computation (1 of 48 entries flipped)"]
    assert main(["golden", "verify", str(tmp_path)]) == 1
    assert "FAIL completion.npz: array mask" in capsys.readouterr().out


def test_emptied_config_fails_verification(tmp_path):
    golden.export(tmp_path)
    problems = _edit_with_fixed_hash(tmp_path, "sensing", lambda a: a.update(config_json=golden.config_bytes({})))
    assert problems == ["sensing.npz: config_json differs from the manifest's config and dlnref's conventions"]


def test_broken_manifest_is_a_usage_error_naming_the_file(tmp_path, capsys):
    golden.export(tmp_path)
    (tmp_path / "manifest.json").write_text('{"cases": {"factorization": ')
    assert main(["golden", "verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json is not valid JSON" in err and "Traceback" not in err
    (tmp_path / "manifest.json").write_text('{"cases": {"factorization": {"file": "factorization.npz"}}}')
    assert main(["golden", "verify", str(tmp_path)]) == 2
    assert "manifest.json is not a golden manifest" in capsys.readouterr().err


def test_replay_from_the_files_alone(tmp_path):
    # Both networks replayed with a hand-written loop from nothing but the file: the documented rule
    # (the wide network takes outer_lr_scale too), not dlnref's training code.
    golden.export(tmp_path)
    with np.load(tmp_path / "completion.npz") as f:
        config = golden.read_config(f["config_json"])["config"]
        mask, target, steps = f["mask"], f["target"], list(f["steps"])
        for net in ("wide", "compressed"):
            W = [f[f"{net}_init_W{l}"] for l in range(1, config["depth"] + 1)]
            scales = [config["outer_lr_scale"]] + [1.0] * (len(W) - 2) + [config["outer_lr_scale"]]
            for t in range(steps[-1] + 1):
                X = W[2] @ W[1] @ W[0]
                if t in steps:
                    np.testing.assert_allclose(X, f[f"{net}_X"][steps.index(t)], rtol=0, atol=1e-10)
                G = np.where(mask, X - target, 0) / mask.sum()
                grads = [(W[2] @ W[1]).T @ G, W[2].T @ G @ W[0].T, G @ (W[1] @ W[0]).T]
                W = [w - config["lr"] * s * g for w, s, g in zip(W, scales, grads)]


def test_verify_without_manifest_exits_2(tmp_path):
    assert main(["golden", "verify", str(tmp_path)]) == 2
