import json

import numpy as np

from dlnref import golden
from dlnref.cli import main


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
        assert json.loads(str(f["config_json"]))["config"]["problem"] == "completion"
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


def test_edited_numbers_with_a_fixed_hash_are_recomputed(tmp_path):
    # Someone edits an array and updates the manifest's hash: the recomputation still catches it.
    golden.export(tmp_path)
    path = tmp_path / "factorization.npz"
    with np.load(path) as f:
        arrays = dict(f)
    arrays["wide_final_W2"] = arrays["wide_final_W2"] * (1 + 1e-6)
    np.savez(path, **arrays)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["cases"]["factorization"]["sha256"] = golden.sha256(path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    problems = golden.verify(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("factorization.npz: array wide_final_W2 differs")


def test_verify_without_manifest_exits_2(tmp_path):
    assert main(["golden", "verify", str(tmp_path)]) == 2
