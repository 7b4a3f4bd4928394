"""Semantic class quarantine: per-class JS over a rolling window of recent frames.

For each class, the quarantine keeps the instance embeddings of the last ``window`` frames that contained the
class and passed the geometric gate, and compares them with the real reference's embeddings of that class
(Jensen-Shannon divergence in bits, :func:`simgap_ext.metrics.semantic_alignment`). A class whose JS rises
above ``threshold`` (with at least ``min_samples`` instances in its window) is quarantined: frames containing
it are held back. It is released when its JS falls to ``threshold - hysteresis`` or below.

Why the window takes geometrically passing frames and not only exported ones: frames held back by the
quarantine must still feed the window, otherwise a quarantined class could never recover (its window would
never change). Re-rendered scenes therefore move the window, and the class recovers when they look real again.

State. Everything that decides future updates is the per-class windows (the arrays themselves, including empty
``(0, 0)`` entries for frames where the class had no scorable crop: they count as frames) and the per-class
:class:`QuarantineState` (the hysteresis flag depends on the whole history, not only on the window).
:meth:`SemanticQuarantine.state_dict` / :meth:`~SemanticQuarantine.load_state_dict` copy exactly that, so that a
resumed generation run continues from the state it had instead of re-gating its whole history.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["QuarantineState", "SemanticQuarantine", "JsFunction"]

log = logging.getLogger(__name__)

JsFunction = Callable[[str, np.ndarray, np.ndarray], float]
"""``js_fn(class_name, real (K, D) float32, synth (M, D) float32) -> JS in bits``."""


@dataclass(frozen=True)
class QuarantineState:
    """What the quarantine knows about one class (the stats model and the panel read this).

    Attributes:
        class_name: the class.
        quarantined: frames containing the class are currently held back.
        js: latest JS (bits) of the window vs the reference, ``None`` before ``min_samples`` instances.
        n_samples: instance embeddings in the window.
        n_frames: frames in the window.
        held_back: frames held back because of this class so far.
        times_quarantined: how often the class entered quarantine.
        has_reference: the reference holds embeddings of this class.
    """

    class_name: str
    quarantined: bool = False
    js: float | None = None
    n_samples: int = 0
    n_frames: int = 0
    held_back: int = 0
    times_quarantined: int = 0
    has_reference: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def _default_js(method: str, n_bins: int, threshold: float, n_permutations: int) -> JsFunction:
    """Histogram JS of :func:`~simgap_ext.metrics.semantic_alignment`, debiased by a permutation baseline.

    A histogram JS between two finite samples of the *same* distribution is far from 0 (with 16 bins and a few
    dozen instances it is often above 0.15 bits), so a raw JS would quarantine perfectly realistic classes
    whenever the window or the bank is small. The baseline is the largest JS among ``n_permutations`` random
    splits of the pooled sample into groups of the same sizes (what JS looks like when nothing differs; the
    largest, not the mean, because instances of one frame are correlated, which random splits understate); the
    debiased JS is ``max(0, JS - baseline)``. ``n_permutations = 0`` returns the raw JS.
    """

    def js(name: str, real: np.ndarray, synth: np.ndarray) -> float:
        from ..metrics.semantic import permutation_debiased_js

        # Fixed permutation seed: the same window gives the same JS (decisions are reproducible).
        return permutation_debiased_js(
            real, synth, n_bins=n_bins, method=method, n_permutations=n_permutations, permutation_seed=0
        )

    return js


def _reference_fingerprint(reference: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the reference's class names, shapes and float32 bytes (identifies it in a saved state)."""
    h = hashlib.sha256()
    for name in sorted(reference):
        arr = np.ascontiguousarray(reference[name], dtype="<f4")
        h.update(f"{name}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


class SemanticQuarantine:
    """Rolling-window semantic quarantine of classes.

    Args:
        window: frames kept per class (>= 1).
        threshold: JS (bits) above which a class is quarantined.
        min_samples: instances a class's window needs before its JS is computed.
        hysteresis: release only at JS <= ``threshold - hysteresis``.
        reference: class name -> (K, D) float32 real embeddings (can be set later with :meth:`set_reference`).
        n_bins: histogram bins of the JS.
        method: ``"sliced"`` or ``"norm"``.
        n_permutations: permutations of the small-sample bias baseline (0: raw JS); see ``_default_js``.
        js_fn: replaces the JS computation (e.g. a cheaper estimator); see :data:`JsFunction`.

    Thread-safe: the Kit writer and the panel may touch it from different threads.
    """

    def __init__(
        self,
        window: int = 20,
        threshold: float = 0.15,
        min_samples: int = 10,
        *,
        hysteresis: float = 0.02,
        reference: Mapping[str, np.ndarray] | None = None,
        n_bins: int = 16,
        method: str = "sliced",
        n_permutations: int = 8,
        js_fn: JsFunction | None = None,
    ) -> None:
        if int(window) < 1:
            raise SimGapInputError(f"quarantine window must be >= 1, got {window}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise SimGapInputError(f"quarantine threshold must lie in [0, 1] bits, got {threshold}")
        if int(min_samples) < 1:
            raise SimGapInputError(f"quarantine min_samples must be >= 1, got {min_samples}")
        if not 0.0 <= float(hysteresis) <= float(threshold):
            raise SimGapInputError(f"quarantine hysteresis must lie in [0, threshold], got {hysteresis}")
        self.window = int(window)
        self.threshold = float(threshold)
        self.min_samples = int(min_samples)
        self.hysteresis = float(hysteresis)
        self._js_fn = js_fn or _default_js(method, int(n_bins), self.threshold, int(n_permutations))
        self._lock = threading.RLock()
        self._reference: dict[str, np.ndarray] = {}
        self._reference_sha256 = _reference_fingerprint({})
        self._windows: dict[str, deque[np.ndarray]] = {}
        self._states: dict[str, QuarantineState] = {}
        self._listeners: list[Callable[[dict[str, QuarantineState]], None]] = []
        if reference is not None:
            self.set_reference(reference)

    # ----------------------------------------------------------------------------------------- reference
    def set_reference(self, reference: Mapping[str, np.ndarray]) -> None:
        """Set the real embeddings per class: name -> (K, D) float32 (K >= 1)."""
        ref: dict[str, np.ndarray] = {}
        dim = None
        for name, feats in reference.items():
            arr = np.asarray(feats, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] == 0:
                raise SimGapInputError(
                    f"quarantine reference for class {name!r} must be (K, D) with K >= 1, got {arr.shape}"
                )
            if dim is not None and arr.shape[1] != dim:
                raise SimGapInputError(f"quarantine reference for class {name!r} has D={arr.shape[1]}, expected {dim}")
            dim = arr.shape[1]
            ref[str(name)] = arr
        with self._lock:
            self._reference = ref
            self._reference_sha256 = _reference_fingerprint(ref)

    # ----------------------------------------------------------------------------------------- updates
    def update(self, class_features: Mapping[str, np.ndarray]) -> dict[str, QuarantineState]:
        """Add one frame's instance embeddings and re-evaluate the classes it contains.

        Args:
            class_features: class name -> (K_c, D) float32 embeddings of that class's instances in the frame
                (K_c may be 0: the frame contained the class but no scorable crop).

        Returns:
            The new state of every class in ``class_features``.
        """
        changed: dict[str, QuarantineState] = {}
        with self._lock:
            for name, feats in class_features.items():
                name = str(name)
                arr = np.asarray(feats, dtype=np.float32)
                if arr.size == 0:
                    arr = arr.reshape(0, arr.shape[1] if arr.ndim == 2 else 0)
                if arr.ndim != 2:
                    raise SimGapInputError(f"quarantine features for class {name!r} must be (K, D), got {arr.shape}")
                win = self._windows.setdefault(name, deque(maxlen=self.window))
                win.append(arr)
                changed[name] = self._evaluate(name)
            listeners = list(self._listeners)
        if changed:
            for callback in listeners:
                callback(dict(changed))
        return changed

    def _evaluate(self, name: str) -> QuarantineState:
        old = self._states.get(name, QuarantineState(name))
        win = self._windows.get(name, ())
        samples = [a for a in win if a.shape[0]]
        n = int(sum(a.shape[0] for a in samples))
        ref = self._reference.get(name)
        js = None
        quarantined = old.quarantined
        if ref is not None and n >= self.min_samples:
            js = float(self._js_fn(name, ref, np.concatenate(samples, axis=0)))
            if not quarantined and js > self.threshold:
                quarantined = True
                log.warning("class %s quarantined (JS=%.3f > %.3f)", name, js, self.threshold)
            elif quarantined and js <= self.threshold - self.hysteresis:
                quarantined = False
                log.info("class %s released from quarantine (JS=%.3f)", name, js)
        state = QuarantineState(
            class_name=name,
            quarantined=quarantined,
            js=js,
            n_samples=n,
            n_frames=len(win),
            held_back=old.held_back,
            times_quarantined=old.times_quarantined + int(quarantined and not old.quarantined),
            has_reference=ref is not None,
        )
        self._states[name] = state
        return state

    def record_held_back(self, class_names: list[str] | tuple[str, ...]) -> None:
        """Count one held-back frame against each of ``class_names``."""
        with self._lock:
            for name in class_names:
                old = self._states.get(name, QuarantineState(name))
                self._states[name] = QuarantineState(**{**asdict(old), "held_back": old.held_back + 1})

    def reset(self, class_name: str | None = None) -> None:
        """Forget the window and state of one class (or of all)."""
        with self._lock:
            names = [class_name] if class_name is not None else list(self._windows)
            for name in names:
                self._windows.pop(name, None)
                self._states.pop(name, None)

    # ----------------------------------------------------------------------------------------- persistence
    def settings(self) -> dict[str, Any]:
        """The settings a saved state is only valid for: window, threshold, min_samples, hysteresis and the
        SHA-256 of the reference embeddings (the JS function itself cannot be fingerprinted; keep it fixed)."""
        with self._lock:
            return {
                "window": self.window,
                "threshold": self.threshold,
                "min_samples": self.min_samples,
                "hysteresis": self.hysteresis,
                "reference_sha256": self._reference_sha256,
            }

    def state_dict(self) -> dict[str, Any]:
        """A copy of everything that decides future updates (see the module docstring, "State").

        Returns:
            ``{"settings": settings(), "windows": {class: [(K, D) float32 arrays, oldest first]},
            "states": {class: QuarantineState.to_dict()}}``. The arrays are copies; ``K`` may be 0 (a frame
            without a scorable crop of the class, shape ``(0, 0)`` or ``(0, D)`` as it was fed).
        """
        with self._lock:
            return {
                "settings": self.settings(),
                "windows": {n: [a.copy() for a in win] for n, win in sorted(self._windows.items())},
                "states": {n: s.to_dict() for n, s in sorted(self._states.items())},
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the windows and per-class states with those of :meth:`state_dict`.

        All or nothing: the state is checked completely before anything changes. Subscribers are called once with
        every restored class state.

        Args:
            state: a dict as returned by :meth:`state_dict` (arrays may be any float32-convertible 2-D arrays).

        Raises:
            SimGapInputError: the state was saved with other settings (window, threshold, min_samples,
                hysteresis, reference embeddings) or is malformed; the message names the key.
        """
        if not isinstance(state, Mapping):
            raise SimGapInputError(f"quarantine state must be a mapping, got {type(state).__name__}")
        mine = self.settings()
        saved = state.get("settings")
        if not isinstance(saved, Mapping):
            raise SimGapInputError("quarantine state has no 'settings'")
        diff = sorted(k for k in set(mine) | set(saved) if saved.get(k) != mine.get(k))
        if diff:
            raise SimGapInputError(
                f"quarantine state was saved with other settings ({', '.join(diff)}): "
                + ", ".join(f"{k}: {saved.get(k)!r} != {mine.get(k)!r}" for k in diff)
            )
        windows: dict[str, deque[np.ndarray]] = {}
        for name, win in dict(state.get("windows") or {}).items():
            if not isinstance(win, (list, tuple)) or len(win) > self.window:
                raise SimGapInputError(f"quarantine state window of class {name!r} must be a list of <= {self.window}")
            arrays = []
            for arr in win:
                a = np.array(arr, dtype=np.float32, copy=True)
                if a.ndim != 2:
                    raise SimGapInputError(f"quarantine state window of class {name!r} holds a {a.ndim}-D array")
                arrays.append(a)
            windows[str(name)] = deque(arrays, maxlen=self.window)
        states: dict[str, QuarantineState] = {}
        fields = set(QuarantineState.__dataclass_fields__)
        for name, st in dict(state.get("states") or {}).items():
            if not isinstance(st, Mapping) or set(st) != fields or st.get("class_name") != name:
                raise SimGapInputError(f"quarantine state of class {name!r} is malformed")
            states[str(name)] = QuarantineState(**st)
        with self._lock:
            self._windows = windows
            self._states = states
            listeners = list(self._listeners)
            restored = dict(sorted(states.items()))
        if restored:
            for callback in listeners:
                callback(dict(restored))

    # ----------------------------------------------------------------------------------------- queries
    def is_quarantined(self, class_name: str) -> bool:
        """Whether frames with ``class_name`` are held back now."""
        with self._lock:
            state = self._states.get(class_name)
            return bool(state and state.quarantined)

    def quarantined_classes(self) -> list[str]:
        """Sorted names of the classes in quarantine."""
        with self._lock:
            return sorted(n for n, s in self._states.items() if s.quarantined)

    def state(self, class_name: str) -> QuarantineState:
        """The state of one class (a fresh, empty state for a class never seen)."""
        with self._lock:
            return self._states.get(
                class_name, QuarantineState(class_name, has_reference=class_name in self._reference)
            )

    def states(self) -> dict[str, QuarantineState]:
        """Class name -> state of every class seen so far."""
        with self._lock:
            return dict(sorted(self._states.items()))

    def subscribe(self, callback: Callable[[dict[str, QuarantineState]], None]) -> Callable[[], None]:
        """Call ``callback(changed_states)`` after every :meth:`update`; returns an unsubscribe callable."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot: settings and per-class states."""
        return {
            "window": self.window,
            "threshold": self.threshold,
            "min_samples": self.min_samples,
            "hysteresis": self.hysteresis,
            "classes": {n: s.to_dict() for n, s in self.states().items()},
        }
