"""Using what a run trained: "Explore this model" and "Save model as…" (part of the panel).

While the run trains (or is paused), both ask the training worker, which alone touches the live
model: "Explore" for a snapshot, a CPU copy of the weights taken between two steps (see
:meth:`explorer.training_worker.TrainingWorker.request_snapshot`) that the inference worker builds
a model from; "Save" for the file, written by the training thread itself
(:meth:`~explorer.training_worker.TrainingWorker.request_save`). The run goes on. After the run
they use the checkpoint it saved (the same weights, with its summary).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog


class ResultsMixin:
    """Explore/save for :class:`explorer.panels.training.panel.TrainingPanel` (uses its run, session,
    ``_spec``, ``_pending``, ``last_checkpoint``, ``_message`` and ``_error``)."""

    def explore(self) -> None:
        """Load the model as it is now (or the saved final one) into the explorer panels."""
        if self._can_snapshot():
            self._pending.append(("explore", None))
            self.run.worker.request_snapshot()
        elif self.last_checkpoint is not None:
            self.session.load_checkpoint(self.last_checkpoint)

    def save_model_as(self, path: str | Path) -> None:
        """Write the current (running) or the saved final model to ``path`` (.safetensors)."""
        path = Path(path)
        if not path.name.endswith(".safetensors"):
            path = path.with_name(path.name + ".safetensors")
        if self._can_snapshot():
            self._pending.append(("save", path))
            self.run.worker.request_save(path, self._summary())
            return
        if self.last_checkpoint is None:
            self._error("Nothing to save", "Train a model first.")
            return
        from model.checkpoints import CheckpointError, atomic_write_bytes  # torch: not at start-up

        try:  # atomically, with the reason in words (a parent that is a file, a full disk)
            atomic_write_bytes(path, Path(self.last_checkpoint).read_bytes())
        except CheckpointError as e:
            self._error("Could not save the model", str(e))
            return
        except OSError as e:  # reading the run's own checkpoint failed
            self._error("Could not save the model",
                        f"{self.last_checkpoint}: cannot be read ({e.strerror or e})")
            return
        self._message(f"Saved {path}")

    def _save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model as", str(self.runs_dir),
                                              "Model (*.safetensors)")
        if path:
            self.save_model_as(path)

    def _can_snapshot(self) -> bool:
        return self.run is not None and self.run.running and self.state in ("running", "paused")

    def _serve_snapshot(self, snap) -> None:
        """Hand a snapshot to every "explore" waiting for one."""
        self.last_snapshot = snap
        if ("explore", None) in self._pending:
            self._pending = [p for p in self._pending if p[0] != "explore"]
            self._use_snapshot(snap)

    def _saved_during_run(self, step: int, path: Path) -> None:
        if ("save", path) in self._pending:
            self._pending.remove(("save", path))
        self._message(f"Saved the model at step {step:,} to {path}")

    def _save_failed_during_run(self, path: Path, text: str) -> None:
        if ("save", path) in self._pending:
            self._pending.remove(("save", path))
        self._error("Could not save the model", text)

    def _serve_after_run(self) -> None:
        """Requests the run could not serve any more (it ended first): use the saved file."""
        pending, self._pending = self._pending, []
        for kind, arg in pending:
            if kind == "explore":
                self.explore()
            else:
                self.save_model_as(arg)

    def _summary(self, step: int | None = None) -> dict:
        """What a model taken from the run says about itself (the training worker adds the
        step when it saves)."""
        spec = self._spec
        out = {"corpus": spec.corpus.name if spec else None, "last_loss": self.last_loss,
               "from_training_panel": True}
        return out if step is None else {"steps": int(step), **out}

    def _use_snapshot(self, snap) -> None:
        name = f"{self._spec.out_path.stem if self._spec else 'trained'} @ step {snap.step:,}"
        self.session.use_snapshot(snap, name, self._summary(snap.step))
        self._message(f"Exploring the model at step {snap.step:,}"
                      + (" (training goes on)" if self.running else ""))


__all__ = ["ResultsMixin"]
