"""One ``lfn-ros train`` run: the loop around :class:`Trainer`, in small named steps.

A run directory (``config.out``) holds ``last.pt`` (model, optimizer, step, data stream state:
resuming from it continues exactly), ``metrics.csv``, ``validation.csv`` (synthetic validation,
the numbers recipe decisions use), ``eval.csv`` (real data, reported only), ``curves.png``,
``card.json`` and the tables of each evaluation in ``eval.log``.

Where a run starts (``config.resume``):

- ``auto``: ``OUT/last.pt`` if it exists, else the shipped checkpoint, else random weights;
- a path: a full training checkpoint, or a weights-only one (such as the shipped fp16 file);
- ``none``: random initialisation.

SIGINT and SIGTERM finish the current step, save and exit normally; ``--minutes`` and
``--steps`` end the run the same way.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..model.weights import save_checkpoint
from ..resources import default_weights
from .config import TrainConfig
from .report import METRIC_FIELDS, build_card, plot_curves, run_record
from .trainer import Trainer, hardware_description
from .validation import validate


def resolve_resume(config: TrainConfig, out: Path):
    """The checkpoint a run starts from (see the module docstring), or None for random weights."""
    if config.resume in (None, "", "none"):
        return None
    if config.resume == "auto":
        if (out / "last.pt").is_file():
            return out / "last.pt"
        return default_weights()
    return Path(config.resume)


def append_rows(path: Path, fields: list, rows: list) -> None:
    """Append dict rows to a CSV file, writing the header when the file is new."""
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


class TrainingRun:
    """The loop of one run on one rank (see :func:`run`)."""

    def __init__(self, config: TrainConfig, device, rank: int = 0, world: int = 1) -> None:
        self.config = config
        self.out = Path(config.out)
        self.main = rank == 0
        self.world = world
        self.trainer = Trainer(config, device=device, rank=rank, world=world)
        self.stop_requested = False
        self.evaluation: dict | None = None
        self.validation: dict | None = None
        self.last: dict = {}
        self.window: list = []
        self.run_step = 0

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Resume, note the starting card, install the stop handlers."""
        trainer = self.trainer
        source = resolve_resume(self.config, self.out)
        if source is not None:
            trainer.load(source)
            self._say(f"resumed from {source} at step {trainer.step}")
        else:
            self._say("starting from random initialisation")
        trainer.run_start = trainer.step  # the one-cycle schedule spans this run
        self.previous = dict(trainer.card)
        self.first_step = trainer.step
        self.hardware = hardware_description(trainer.device, self.world)
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.t0 = self.window_start = time.time()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, self._request_stop)
            except ValueError:  # not the main thread
                pass
        self._say(f"precision {trainer.precision}, crops {','.join(f'{w}x{h}' for h, w in self.config.sizes)}, "
                  f"batch {self.config.batch}, reuse {self.config.reuse}, schedule {self.config.schedule}, lr {self.config.lr:g}")

    def _request_stop(self, signum, frame) -> None:
        self.stop_requested = True
        print(f"\n[train] {signal.Signals(signum).name} received: stopping after this step and saving", file=sys.stderr, flush=True)

    def _say(self, message: str) -> None:
        if self.main:
            print(f"[train] {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ loop
    def should_stop(self) -> bool:
        """Steps done, time up or a signal; agreed by every rank under DDP."""
        c = self.config
        done = self.stop_requested or (c.steps is not None and self.run_step >= c.steps)
        done = done or (c.minutes is not None and time.time() - self.t0 >= c.minutes * 60)
        if self.world > 1:
            import torch.distributed as dist

            flag = torch.tensor([float(done)], device=self.trainer.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            done = bool(flag.item())
        return done

    def step(self) -> dict:
        if self.config.minutes:
            self.trainer.time_progress = (time.time() - self.t0) / (self.config.minutes * 60)
        stats = self.trainer.train_step()
        self.run_step += 1
        self.window.append(stats)
        self.last = stats
        return stats

    def pairs_per_second(self) -> float:
        return len(self.window) * self.config.batch * self.world / max(time.time() - self.window_start, 1e-9)

    def log_window(self) -> None:
        """One metrics.csv row: the window's averages."""
        if not self.window:
            return
        row = {k: sum(w[k] for w in self.window) / len(self.window) for k in self.window[0]}
        row.update(step=self.trainer.step, run_step=self.run_step, time_s=round(time.time() - self.t0, 1),
                   wall_total_s=round(float(self.previous.get("wall_time_s", 0.0)) + time.time() - self.t0, 1),
                   pairs_per_s=round(self.pairs_per_second(), 3), finest_level=self.config.finest_level,
                   skipped=sum(w["skipped"] for w in self.window))
        if self.main:
            append_rows(self.out / "metrics.csv", METRIC_FIELDS,
                        [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}])
        self.window, self.window_start = [], time.time()

    def due(self, every: int) -> bool:
        return bool(every) and self.trainer.step % every == 0

    # ------------------------------------------------------------------ evaluation
    def run_validation(self) -> None:
        """Synthetic validation (decisions are made on it); a row in validation.csv."""
        if not self.main:
            return
        t, trainer = time.time(), self.trainer
        self.validation = {"step": trainer.step, **validate(trainer.model, precision=trainer.precision)}
        averaged = ""
        if trainer.average is not None:  # the same pairs through the averaged weights (ema_* columns)
            with trainer.average.applied(trainer.model):
                ema = validate(trainer.model, precision=trainer.precision)
            self.validation.update({f"ema_{k}": v for k, v in ema.items() if k != "pairs"})
            averaged = f", averaged weights {ema['epe']:.3f} px"
        append_rows(self.out / "validation.csv", list(self.validation), [self.validation])
        self._say(f"step {trainer.step}: synthetic validation EPE {self.validation['epe']:.3f} px{averaged} "
                  f"({time.time() - t:.0f} s)")

    def run_evaluation(self) -> None:
        """Real-data evaluation (reported only, never used to choose anything); eval.csv."""
        if not self.main:
            return
        from ..engine import FlowEngine
        from ..evaluate import evaluate
        from ..resources import data_root

        root = data_root(self.config.eval_root)
        if root is None:
            self._say("evaluation skipped: no evaluation data found")
            return
        trainer = self.trainer
        engine = FlowEngine(model=trainer.model, device=str(trainer.device), finest_level=trainer.model.finest_level)
        with open(self.out / "eval.log", "a") as log:
            print(f"\n##### step {trainer.step} ({datetime.now(timezone.utc).isoformat(timespec='seconds')})", file=log, flush=True)
            results = evaluate(root, engine=engine, methods=("lfn_ros",), max_pairs=self.config.eval_pairs or None,
                               progress=False, warmup=False, out=log)
        table = {"step": trainer.step, "finest_level": trainer.model.finest_level, "max_pairs": self.config.eval_pairs}
        rows = []
        for name, entry in list(results.get("datasets", {}).items()) + [("all", results.get("all", {}))]:
            metrics = entry.get("methods", {}).get("lfn_ros", {})
            table[name] = {k: metrics.get(k) for k in ("epe", "fl_all", "pairs")}
            rows.append({"step": trainer.step, "dataset": name, **table[name]})
        append_rows(self.out / "eval.csv", ["step", "dataset", "epe", "fl_all", "pairs"], rows)
        self.evaluation = table

    # ------------------------------------------------------------------ checkpoints
    def card(self) -> dict:
        t = self.trainer
        steps = t.step - self.first_step
        run = run_record(self.started, steps, self.config.batch * self.world, time.time() - self.t0, self.hardware,
                         self.config, t.precision, self.last)
        return build_card(self.previous, run, self.config, t.data_config.to_dict(), t.step, self.evaluation,
                          self.validation, t.resumed_from)

    def checkpoint(self) -> None:
        self.trainer.save(self.out / "last.pt", self.card())
        if self.main:
            plot_curves(self.out)

    def finish(self) -> None:
        """Final evaluation, checkpoint, card.json, export; one summary line."""
        c = self.config
        if self.run_step > 0 and c.validate_every and not self.due(c.validate_every):
            self.run_validation()
        if self.run_step > 0 and c.eval_every and not self.due(c.eval_every):
            self.run_evaluation()
        if self.run_step > 0 or (self.world == 1 and not (self.out / "last.pt").exists()):
            self.checkpoint()
        card = self.card()
        if not self.main:
            return
        (self.out / "card.json").write_text(json.dumps(card, indent=1))
        if c.export:
            self.export(card)
        wall = time.time() - self.t0
        self._say(f"{self.run_step} steps in {wall / 60:.1f} min ({self.run_step * c.batch * self.world / max(wall, 1e-9):.2f} "
                  f"pairs/s), total {self.trainer.step} steps; last loss {self.last.get('loss', float('nan')):.4g}, "
                  f"EPE {self.last.get('epe', float('nan')):.3f} px; checkpoint {self.out / 'last.pt'}")

    def export(self, card: dict) -> None:
        """The shipped form (fp16 weights + card) at ``config.export``: the averaged weights when
        the run keeps an average, with the raw ones beside them (``<name>_raw.pt``)."""
        export, trainer = Path(self.config.export), self.trainer
        if trainer.average is None:
            save_checkpoint(export, trainer.model, card=card, half=True)
            self._say(f"exported fp16 weights with card to {export}")
            return
        raw = export.with_name(f"{export.stem}_raw{export.suffix}")
        save_checkpoint(raw, trainer.model, card={**card, "weights": "raw (last step's)"}, half=True)
        note = f"exponential moving average, decay {trainer.average.decay:g}, over {trainer.average.updates} steps"
        with trainer.average.applied(trainer.model):
            save_checkpoint(export, trainer.model, card={**card, "weights": note}, half=True)
        self._say(f"exported fp16 weights with card to {export} ({note}); the raw weights to {raw}")


def run(config: TrainConfig, device, rank: int = 0, world: int = 1) -> int:
    """Train until ``config.steps``, ``config.minutes`` or a stop signal; returns 0."""
    from tqdm import tqdm

    session = TrainingRun(config, device, rank, world)
    if session.main:
        session.out.mkdir(parents=True, exist_ok=True)
    session.start()
    sizes = ",".join(f"{w}x{h}" for h, w in config.sizes)
    bar = tqdm(total=config.steps, disable=not session.main, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 60.0, desc=f"train L{config.finest_level} {sizes} x{config.batch}")
    try:
        while not session.should_stop():
            stats = session.step()
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3g}", epe=f"{stats['epe']:.2f}", pairs_s=f"{session.pairs_per_second():.2f}",
                            lr=f"{stats['lr']:.1e}", refresh=False)
            if len(session.window) >= config.log_every:
                session.log_window()
            if session.due(config.validate_every):
                session.run_validation()
            if session.due(config.eval_every):
                session.run_evaluation()
                if world > 1:
                    import torch.distributed as dist

                    dist.barrier()
            if config.save_every and session.run_step % config.save_every == 0:
                session.checkpoint()
    finally:
        bar.close()
    session.log_window()
    session.finish()
    return 0
