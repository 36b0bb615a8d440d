"""Options that are checked before any model loads: a wrong path is a usage error (exit 2) at once."""

from __future__ import annotations


def test_evaluate_ood_must_be_an_existing_folder(cli, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not read")
    for wrong in (tmp_path / "missing", photo):
        r = cli("evaluate", "--model", tmp_path / "never-loaded.pt", "--ood", wrong)
        assert r.exit_code == 2 and "--ood" in r.output, r.output
