"""Kit entry point of ``simgap_ext``: wiring only (every decision lives in plain-Python modules).

On startup the extension
1. reads ``/exts/simgap_ext/*`` carb settings into :class:`~simgap_ext.settings.SimGapSettings`;
2. registers ``SimGapWriter`` with Replicator's ``WriterRegistry`` and the ``"replicator"`` scene source (a
   :class:`~simgap_ext.replicator.source.ReplicatorSceneSource` factory) when ``omni.replicator.core`` is present;
3. opens Window > SimGap (an omni.ui view over the shared :class:`~simgap_ext.pipeline.stats.AcceptanceStats`)
   when ``omni.ui`` is present and ``show_window`` is set;
4. when ``headless_batch`` is set, starts the generation batch as an asyncio task on Kit's loop; the batch itself
   runs in one worker thread so that startup and Kit's updates never block on it.

``on_shutdown`` cancels a running batch (it stops before its next render; the run stays resumable), waits for the
worker, unregisters the writer and releases the window, menu and update subscriptions.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
from typing import Any

import carb
import carb.settings
import omni.ext
import omni.kit.app

from .backends import register_scene_source, unregister_scene_source
from .pipeline.stats import AcceptanceStats
from .replicator.batch import BatchController
from .replicator.writer import HAS_REPLICATOR, on_writer_created, register_writer, unregister_writer
from .settings import SETTINGS_ROOT, SimGapSettings, WriterSettings, read_settings
from .ui.panel_model import PanelModel

__all__ = ["SimGapExtension", "get_instance"]

_INSTANCE: SimGapExtension | None = None


def get_instance() -> SimGapExtension | None:
    """The running extension object (None when the extension is disabled)."""
    return _INSTANCE


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _publish_focus(focus_classes: list[str], seed: int) -> None:
    """Hand the runner's seed and focus classes to the user's randomizer graph through carb settings."""
    settings = carb.settings.get_settings()
    settings.set(f"{SETTINGS_ROOT}/runtime/focus_classes", ",".join(focus_classes))
    settings.set(f"{SETTINGS_ROOT}/runtime/seed", int(seed))


def _replicator_source_factory(
    writer: WriterSettings, loop: asyncio.AbstractEventLoop, *, sensor: Any, preset: str = "realistic", **kw: Any
) -> Any:
    """``get_scene_source("replicator", ...)`` inside Kit (registered on startup when Replicator is present)."""
    from .replicator.source import ReplicatorSceneSource

    return ReplicatorSceneSource(
        sensor=sensor,
        preset=preset,
        render_product=writer.render_product,
        annotator=writer.annotator,
        randomize_event=writer.randomize_event,
        loop=loop,
        on_focus=_publish_focus,
        device=kw.pop("device", None),
        **kw,
    )


class SimGapExtension(omni.ext.IExt):
    """SimGap's ``IExt``: settings, writer registration, panel and the headless batch."""

    def on_startup(self, ext_id: str) -> None:
        global _INSTANCE
        self.ext_id = ext_id
        self.settings: SimGapSettings | None = None
        self.stats = AcceptanceStats()
        self.panel_model = PanelModel(self.stats)
        self.writer_registered = False
        self.source_registered = False
        # The batch coroutine references this controller, never the IExt, so Kit can release a disabled extension.
        self.batch = BatchController(self.panel_model, on_finish=omni.kit.app.get_app().post_quit)
        self._window: Any = None
        self._menu_items: list[Any] = []
        self._forget_writer_listener: Any = None
        _INSTANCE = self

        get = carb.settings.get_settings().get
        try:
            self.settings = read_settings(get)
        except ValueError as exc:
            carb.log_error(f"SimGap: invalid settings, extension idle: {exc}")
            if get(f"{SETTINGS_ROOT}/quit_on_finish") in (True, "true", "1", 1):
                omni.kit.app.get_app().post_quit(2)
            return
        s = self.settings
        carb.log_info(f"SimGap {ext_id}: sensor {s.batch.sensor}, backend {s.batch.backend}, out {s.batch.out_dir}")

        if s.writer.register_writer:
            self.writer_registered = register_writer()
            if self.writer_registered:
                carb.log_info("SimGap: SimGapWriter registered with omni.replicator.core")
                # Replicator builds the writers; the panel follows the newest one (unless a batch is running).
                self._forget_writer_listener = on_writer_created(self._on_writer_created)
        if HAS_REPLICATOR:
            # Lets backend=replicator (and `get_scene_source("replicator")`) render through this Kit's Replicator.
            factory = functools.partial(_replicator_source_factory, s.writer, asyncio.get_event_loop())
            register_scene_source("replicator", factory)
            self.source_registered = True
        if s.ui.show_window and _has_module("omni.ui"):
            self._open_window()
        self._add_menu()  # Window > SimGap is there even with show_window=false: it builds the panel on demand
        if s.batch.headless_batch:
            self.start_batch()

    # ------------------------------------------------------------------ batch
    @property
    def batch_task(self) -> asyncio.Future | None:
        """The current/last batch task (result: the GenerationSummary, or None when cancelled or failed)."""
        return self.batch.task

    @property
    def batch_result(self) -> Any:
        """The last batch's GenerationSummary, or None."""
        return self.batch.result

    @property
    def batch_error(self) -> BaseException | None:
        """Why the last batch did not finish, or None."""
        return self.batch.error

    def start_batch(self, settings: SimGapSettings | None = None) -> asyncio.Future:
        """Schedule a batch on Kit's asyncio loop (work in a worker thread) and return its task."""
        settings = settings or self.settings
        if settings is None:
            raise RuntimeError("SimGap settings are invalid; see the log")
        return self.batch.start(
            settings.batch, settings.gate, quit_code=settings.batch.quit_on_finish, replicator=settings.writer
        )

    # ------------------------------------------------------------------ UI
    def _open_window(self) -> None:
        try:
            from .ui.events import subscribe_update
            from .ui.window import SimGapWindow

            self._window = SimGapWindow(
                self.panel_model,
                subscribe_updates=lambda cb: subscribe_update(cb, "simgap panel refresh"),
                on_run_batch=self._on_run_clicked,
            )
        except Exception as exc:  # noqa: BLE001 - a broken UI must not take the extension down
            carb.log_warn(f"SimGap: panel unavailable: {exc}")
            self._window = None

    def _add_menu(self) -> None:
        """Window > SimGap, registered even when the panel could not be built (it opens it on demand)."""
        if _has_module("omni.kit.menu.utils"):
            try:
                from omni.kit.menu.utils import MenuItemDescription, add_menu_items

                self._menu_items = [MenuItemDescription(name="SimGap", onclick_fn=self._toggle_window)]
                add_menu_items(self._menu_items, "Window")
            except Exception as exc:  # noqa: BLE001
                carb.log_warn(f"SimGap: no Window menu entry: {exc}")
                self._menu_items = []

    def _on_writer_created(self, writer: Any) -> None:
        if not self.batch.running:
            self.panel_model.follow_writer(writer)

    def _toggle_window(self, *_args: Any) -> None:
        if self._window is None:
            if _has_module("omni.ui"):
                self._open_window()
        else:
            self._window.visible = not self._window.visible

    def _on_run_clicked(self) -> None:
        try:
            self.start_batch()
        except RuntimeError as exc:
            carb.log_warn(f"SimGap: {exc}")

    # ------------------------------------------------------------------ shutdown
    def on_shutdown(self) -> None:
        global _INSTANCE
        self.batch.shutdown()
        if self._forget_writer_listener is not None:
            self._forget_writer_listener()
            self._forget_writer_listener = None
        if self.writer_registered:
            unregister_writer()
            self.writer_registered = False
        if self.source_registered:
            unregister_scene_source("replicator")
            self.source_registered = False
        if self._menu_items:
            try:
                from omni.kit.menu.utils import remove_menu_items

                remove_menu_items(self._menu_items, "Window")
            except Exception as exc:  # noqa: BLE001
                carb.log_warn(f"SimGap: menu removal failed: {exc}")
            self._menu_items = []
        if self._window is not None:
            self._window.destroy()
            self._window = None
        self.panel_model.detach()
        if _INSTANCE is self:
            _INSTANCE = None
