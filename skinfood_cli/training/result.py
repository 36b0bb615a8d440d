"""What a run returns: `TrainResult`, with the epoch best.pt came from and its trust summary (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skinfood_cli.checkpoint import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class BestEpoch:
    """The epoch whose weights are best.pt, with its validation figures (a metrics.csv row's)."""

    epoch: int  # 1-based
    val_acc: float
    val_macro_f1: float
    val_loss: float

    @classmethod
    def from_row(cls, row: dict | None) -> BestEpoch | None:
        """From a history row as the loop writes it; None for none (no epoch finished)."""
        if row is None:
            return None
        return cls(row["epoch"], row["val_acc"], row["val_macro_f1"], row["val_loss"])


@dataclass(frozen=True)
class Conformal:
    """best.pt's prediction sets, as calibrated on validation (trust/conformal.py's `state()`)."""

    coverage: float  # the share asked for (--coverage)
    qhat: float  # the conformal quantile; +inf: too few photos, every set is the full list
    calibration_size: int  # validation photos calibrated on
    validation_coverage: float  # the share of them whose set held the true condition
    validation_mean_set_size: float
    reason: str = ""  # why the sets are full, when they are


@dataclass(frozen=True)
class TrustSummary:
    """best.pt's scope check and prediction sets, as the run reports them (`ckpt["trust"]` holds all)."""

    method: str  # the out-of-scope score (trust/scope.py)
    threshold: float  # its cut: below it a photo is out of scope
    conformal: Conformal | None

    @classmethod
    def from_state(cls, trust: dict | None) -> TrustSummary | None:
        """From the checkpoint's `trust` dict (`trust.fit_trust`); None for none."""
        if not trust:
            return None
        sets = trust.get("conformal")
        conformal = None
        if sets:
            conformal = Conformal(
                coverage=sets["coverage"],
                qhat=sets["qhat"],
                calibration_size=sets["calibration_size"],
                validation_coverage=sets["validation_coverage"],
                validation_mean_set_size=sets["validation_mean_set_size"],
                reason=sets.get("reason") or "",
            )
        return cls(trust["method"], trust["threshold"], conformal)


@dataclass
class TrainResult:
    run_dir: Path
    best_path: Path
    last_path: Path
    history: list[dict]
    best: BestEpoch | None  # None: no epoch finished
    interrupted: bool = False
    temperature: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    skipped: list[tuple[str, str]] = field(default_factory=list)
    trust: TrustSummary | None = None  # None: interrupted before calibration
    epochs_done: float = 0.0  # epochs trained, the last perhaps in part (--minutes)
    minutes: float = 0.0  # wall-clock minutes from the first step to best.pt calibrated, over every session
    select: str = "last"  # how best.pt was chosen
    arch: str = ""  # the backbone's registry name

    def to_dict(self) -> dict:
        """The run as `skinfood train --format json` prints it (docs/usage.md has the schema)."""
        best, trust = self.best, self.trust
        conformal = trust.conformal if trust else None
        pictures = {p.stem: str(p) for p in sorted(self.run_dir.glob("*.png"))}
        return {
            "run": self.run_dir.name,
            "run_dir": str(self.run_dir),
            "arch": self.arch,
            "best": str(self.best_path) if self.best_path.is_file() else None,
            "last": str(self.last_path) if self.last_path.is_file() else None,
            "pictures": pictures,
            "interrupted": self.interrupted,
            "epochs": round(self.epochs_done, 3),
            "minutes": round(self.minutes, 3),
            "select": self.select,
            "validation": {
                "epoch": best.epoch if best else None,
                "accuracy": best.val_acc if best else None,
                "macro_f1": best.val_macro_f1 if best else None,
                "loss": best.val_loss if best else None,
            },
            "temperature": self.temperature,
            "threshold": self.threshold,
            "scope": {"method": trust.method, "threshold": trust.threshold} if trust else None,
            "conformal": (
                {
                    "coverage": conformal.coverage,
                    "qhat": conformal.qhat,
                    "calibration_size": conformal.calibration_size,
                    "validation_coverage": conformal.validation_coverage,
                    "validation_mean_set_size": conformal.validation_mean_set_size,
                    "reason": conformal.reason or None,
                }
                if conformal
                else None
            ),
            "skipped": len(self.skipped),
        }
