"""Shell completion offers run names for --model and disease keys for `diseases show`."""

from __future__ import annotations

import os
import subprocess
import sys


def _complete(words: str, env_home) -> list[str]:
    env = {
        **os.environ,
        "SKINFOOD_HOME": str(env_home),
        "_SKINFOOD_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    code = "import sys; sys.argv[0] = 'skinfood'; from skinfood_cli.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    return done.stdout.split()


def test_model_completes_to_trained_run_names(tmp_path):
    for name in ("derm-a", "derm-b", "other"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "best.pt").write_bytes(b"")
    (tmp_path / "runs" / "derm-empty").mkdir()  # no checkpoint: not a run to offer
    assert sorted(_complete("skinfood predict --model derm", tmp_path)) == ["derm-a", "derm-b"]


def test_diseases_show_completes_to_description_keys(tmp_path):
    offered = _complete("skinfood diseases show pso", tmp_path)
    assert offered and all(k.startswith("pso") for k in offered) and "psoriasis" in offered
