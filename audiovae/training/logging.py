"""What a run tells people: ``log.csv`` (one row per log interval, widening when validation terms appear),
TensorBoard when it is installed, and progress on the terminal.

Progress is a bar only when stderr is a terminal; in a log file (``nohup``, CI, a cluster job) a bar is thousands of
carriage-return lines, so there one plain line is printed per log row instead.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..fileio import write_atomic

__all__ = ["RunLog", "Progress", "read_log"]


def _write_csv(path: Path, rows: list[dict], fields_: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields_, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def _read_csv(path: Path) -> tuple[list[dict], list[str]]:
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader), list(reader.fieldnames or [])


def read_log(path: str | Path) -> list[dict]:
    """The rows of a run's ``log.csv`` as dicts of strings (empty when there is no log)."""
    return _read_csv(Path(path))[0]


class RunLog:
    """Rows of scalars to ``log.csv`` (and TensorBoard); ``history`` keeps what this process wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.history: list[dict] = []
        self._fields: list[str] | None = None
        self._tb = None

    def start(self, step: int) -> None:
        """Begin writing: a fresh run (step 0) starts a fresh file; TensorBoard continues from ``step``."""
        if step == 0:
            self.path.unlink(missing_ok=True)
        self._fields = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - optional (missing, or broken by its own dependencies): log.csv has it all
            self._tb = None
        else:
            self._tb = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=step or None)

    def truncate(self, step: int) -> None:
        """Forget rows after ``step`` (a resumed run logs those steps again)."""
        rows, names = _read_csv(self.path)
        if rows:
            _write_csv(self.path, [r for r in rows if int(r["step"]) <= step], names)

    def write(self, row: dict) -> None:
        """Append; a new column (validation terms appear later) rewrites the file with a wider header."""
        if self._fields is None:
            self._fields = _read_csv(self.path)[1]
        new = [k for k in row if k not in self._fields]
        if new:
            self._fields = self._fields + new
            _write_csv(self.path, _read_csv(self.path)[0] + [row], self._fields)
        else:
            with open(self.path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=self._fields, restval="").writerow(row)
        self.history.append(row)
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, int | float):
                    self._tb.add_scalar(k, v, int(row["step"]))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class Progress:
    """A tqdm bar on a terminal; elsewhere one line per :meth:`row` (step, loss, throughput, time left)."""

    def __init__(self, total: int, initial: int, enabled: bool, stream=None) -> None:  # noqa: ANN001
        self.total, self.step, self.enabled = total, initial, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                         file=self.stream) if self.tty else None
        self._start, self._first = time.perf_counter(), initial

    def update(self) -> None:
        self.step += 1
        if self._bar is not None:
            self._bar.update(1)

    def row(self, row: dict) -> None:
        """Show the latest log row."""
        loss = row.get("loss", float("nan"))
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4g}", audio=f"{row['audio_s_per_s']:.0f}s/s", refresh=False)
        elif self.enabled:
            done = self.step - self._first
            left = (time.perf_counter() - self._start) / max(done, 1) * (self.total - self.step)
            self.stream.write(f"step {self.step}/{self.total}  loss {loss:.4g}  "
                              f"{row['audio_s_per_s']:.0f} s audio/s  {left / 60:.1f} min left\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (validation results)."""
        if self._bar is not None:
            self._bar.write(text)
        elif self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
