"""A progress bar for interactive training: tqdm when installed, else a plain stderr line."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress", "interactive_stderr"]


def interactive_stderr() -> bool:
    """True when someone watches stderr: a terminal, or a Jupyter kernel's output area."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Context manager counting steps; ``enabled=False`` makes it silent and free."""

    def __init__(
        self, total: int, desc: str = "", enabled: bool = True, stream: Any = None
    ) -> None:
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self._bar = None
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._postfix = ""

    def __enter__(self) -> Progress:
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=self.desc, leave=False, file=self.stream)
        return self

    def update(self, n: int = 1, **postfix: float) -> None:
        self.count += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            return
        self._postfix = " ".join(f"{k}={v:.4g}" for k, v in postfix.items())
        now = time.perf_counter()
        if now - self._last_draw >= 0.2 or self.count == self.total:
            self._last_draw = now
            elapsed = now - self._started
            self.stream.write(
                f"\r{self.desc} {self.count}/{self.total} [{elapsed:.1f}s] {self._postfix}"
            )
            self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
