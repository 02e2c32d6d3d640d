"""Progress display: a tqdm bar on a terminal, quiet ``key=value`` log lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """Reports training progress; `bar` None chooses a tqdm bar iff stderr is a TTY."""

    def __init__(self, total: int, initial: int, label: str, bar: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.total = total
        use_bar = self.stream.isatty() if bar is None else bar
        self._bar = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=label, file=self.stream,
                             dynamic_ncols=True, leave=False)

    def step(self, postfix: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)

    def log(self, event: str, **fields: Any) -> None:
        """One structured line (``event key=value ...``), printed above the bar if any."""
        line = " ".join([f"[{self.label}]", event, *(f"{k}={_fmt(v)}" for k, v in
                                                     fields.items())])
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
