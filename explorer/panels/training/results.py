"""Using what a run trained: "Explore this model" and "Save model as…" (part of the panel).

While the run trains, both ask the worker for a snapshot: a CPU copy of the weights taken between
two steps (see :meth:`explorer.training_worker.TrainingWorker.request_snapshot`); the run goes on.
After the run they use the checkpoint it saved (the same weights, with its summary).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from model.checkpoints import save_checkpoint


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
            self.run.worker.request_snapshot()
            return
        if self.last_checkpoint is None:
            self._error("Nothing to save", "Train a model first.")
            return
        try:
            shutil.copyfile(self.last_checkpoint, path)
        except OSError as e:
            self._error("Could not save the model", f"{path}: {e}")
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
        """Hand a snapshot to every request waiting for one."""
        self.last_snapshot = snap
        pending, self._pending = self._pending, []
        for kind, arg in pending:
            if kind == "explore":
                self._use_snapshot(snap)
            elif kind == "save":
                self._save_snapshot(snap, arg)

    def _serve_after_run(self) -> None:
        """Requests the run could not serve any more (it ended first): use the saved file."""
        pending, self._pending = self._pending, []
        for kind, arg in pending:
            if kind == "explore":
                self.explore()
            else:
                self.save_model_as(arg)

    def _summary(self, snap) -> dict:
        spec = self._spec
        return {"steps": int(snap.step), "corpus": spec.corpus.name if spec else None,
                "last_loss": self.last_loss, "from_training_panel": True}

    def _save_snapshot(self, snap, path: Path) -> None:
        try:
            save_checkpoint(path, snap.build("cpu"), snap.tokenizer, summary=self._summary(snap))
        except Exception as e:  # noqa: BLE001 - a full disk, a read-only folder: one dialog
            self._error("Could not save the model", f"{path}: {e}")
            return
        self._message(f"Saved the model at step {snap.step:,} to {path}")

    def _use_snapshot(self, snap) -> None:
        name = f"{self._spec.out_path.stem if self._spec else 'trained'} @ step {snap.step:,}"
        self.session.use_snapshot(snap, name, self._summary(snap))
        self._message(f"Exploring the model at step {snap.step:,}"
                      + (" (training goes on)" if self.running else ""))


__all__ = ["ResultsMixin"]
