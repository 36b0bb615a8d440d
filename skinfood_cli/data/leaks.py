"""Copies across splits at training and evaluation time (the finding is check.py's).

Training: a photo in train with a near copy in the validation or test split is
left out of train by default (`--leaks drop`): the validation and test photos
stay as they are, so the figures are about pictures the model did not learn
from, and the test set is comparable with other runs'. `--leaks keep` trains on
everything and only reports. Either way the run records what it found and did,
and the difference hash of every photo it trained on, so `evaluate` can find
test photos that have a copy among them even when given another folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

POLICIES = ("drop", "keep")


@dataclass
class LeakScreen:
    """What the training pre-scan found among train, val and test photos."""

    policy: str
    threshold: int
    pairs: list[dict] = field(default_factory=list)  # {train, other, split, distance, exact, mirrored}
    dropped: list[str] = field(default_factory=list)  # training photos left out (relative keys)
    train_hashes: list[str] = field(default_factory=list)  # dHash of each photo trained on
    ita: dict[str, float | None] = field(default_factory=dict)  # val photo path -> ITA

    def record(self) -> dict:
        """The part stored in the checkpoint and config.yaml."""
        return {
            "policy": self.policy,
            "threshold": self.threshold,
            "pairs": self.pairs,
            "dropped": self.dropped,
            "num_pairs": len(self.pairs),
            "num_dropped": len(self.dropped),
        }

    def summary(self) -> str:
        """One line for the person training."""
        if not self.pairs:
            return f"no photo in train has a copy in val or test (within {self.threshold} of 256 bits)"
        others = len({(p["split"], p["other"]) for p in self.pairs})
        trains = len({p["train"] for p in self.pairs})
        what = (
            f"left {len(self.dropped)} training photo(s) out (--leaks keep trains on them)"
            if self.policy == "drop"
            else "kept them in train (--leaks keep): val/test figures will be optimistic"
        )
        return (
            f"{others} val/test photo(s) have a near copy among {trains} training photo(s) "
            f"(within {self.threshold} of 256 bits): {what}"
        )


def left_out(record: dict | None, root: str | os.PathLike) -> set[Path]:
    """The training photos a run's leak screen left out (`LeakScreen.record()`, as the checkpoint
    keeps it under data.leaks), as resolved paths under the dataset `root`."""
    base = Path(root).resolve()
    return {(base / key).resolve() for key in (record or {}).get("dropped", [])}


def screen_dataset(
    ds, policy: str = "drop", threshold: int | None = None, *, workers: int | None = None, progress=None
) -> LeakScreen:
    """Find training photos with a copy in val or test, and leave them out of `ds.train` under "drop".

    `ds` is a `data.dataset.Dataset` after its pre-scan; it is changed in place.
    """
    from skinfood_cli.data.check import DEFAULT_THRESHOLD
    from skinfood_cli.data.dataset import relative_key
    from skinfood_cli.data.hash_cache import collect_facts
    from skinfood_cli.data.hashing import close_pairs, pack_hashes
    from skinfood_cli.errors import UsageError

    if policy not in POLICIES:
        raise UsageError(f"--leaks must be one of {', '.join(POLICIES)}, not {policy!r}")
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    others = [(p, "val") for p, _ in ds.val] + [(p, "test") for p, _ in ds.test]
    train_paths = [p for p, _ in ds.train]
    facts, _ = collect_facts(train_paths + [p for p, _ in others], workers=workers, progress=progress)
    train_facts, other_facts = facts[: len(train_paths)], facts[len(train_paths) :]
    ok = [i for i, f in enumerate(other_facts) if not f.error]
    screen = LeakScreen(policy, threshold)
    hits = close_pairs(
        pack_hashes([other_facts[i].dhash for i in ok]),
        pack_hashes([f.dhash for f in train_facts]),
        threshold,
        a_mirror=pack_hashes([other_facts[i].dhash_mirror for i in ok]),
    )
    leaked = set()
    for i, j, d, mirrored in hits:
        other, split = others[ok[i]]
        if train_facts[j].error:
            continue
        exact = other_facts[ok[i]].sha256 == train_facts[j].sha256
        screen.pairs.append(
            {
                "train": relative_key(train_paths[j], ds.root),
                "other": relative_key(other, ds.root),
                "split": split,
                "distance": 0 if exact else d,
                "exact": exact,
                "mirrored": mirrored and not exact,
            }
        )
        leaked.add(j)
    screen.pairs.sort(key=lambda p: (p["distance"], p["other"], p["train"]))
    if policy == "drop" and leaked:
        screen.dropped = sorted(relative_key(train_paths[j], ds.root) for j in leaked)
        ds.train = [s for j, s in enumerate(ds.train) if j not in leaked]
        train_facts = [f for j, f in enumerate(train_facts) if j not in leaked]
    screen.train_hashes = [f.dhash for f in train_facts if f.dhash]
    screen.ita = {p: f.ita for (p, split), f in zip(others, other_facts) if split == "val"}
    return screen


def find_training_copies(
    paths: list[str], train_hashes: list[str], threshold: int, *, workers: int | None = None
) -> dict[str, int]:
    """Paths (of photos being evaluated) with a near copy among a run's training photos -> distance."""
    from skinfood_cli.data.hash_cache import collect_facts
    from skinfood_cli.data.hashing import nearest, pack_hashes

    if not paths or not train_hashes:
        return {}
    facts, _ = collect_facts(paths, workers=workers)
    ok = [i for i, f in enumerate(facts) if not f.error]
    d = nearest(
        pack_hashes([facts[i].dhash for i in ok]),
        pack_hashes(train_hashes),
        a_mirror=pack_hashes([facts[i].dhash_mirror for i in ok]),
    )
    return {paths[i]: int(dist) for i, dist in zip(ok, d) if dist <= threshold}


def leak_fields(screen: LeakScreen | None) -> dict:
    """What a checkpoint's "data" section records: the screen, and the training photos' hashes."""
    if screen is None:
        return {}
    return {"leaks": screen.record(), "train_hashes": screen.train_hashes}
