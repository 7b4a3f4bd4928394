"""SimGap's class taxonomy: class names, their ids, and the parent each tail class is scored against.

The taxonomy ships as ``config/taxonomy.yaml`` (see :func:`simgap_ext.config_files.config_dir`). Every class has a
unique semantic ``id``, a ``parent`` (``None`` for roots), a ``kind`` (``thing``, ``stuff`` or ``ignore``) and a
``head`` flag marking the coarse classes the gate scores by default. Two questions are answered here:

- :func:`resolve`: which available class stands in for ``name``? ``name`` itself when available, else its
  nearest available ancestor (``wheelchair_user`` -> ``pedestrian`` when real data has no wheelchair users), else
  ``None``. The same walk rolls a fine real class up onto the classes a synthetic dataset uses
  (``resolve("car", {"vehicle", "pedestrian"}) == "vehicle"``).
- :func:`head_of`: the nearest head class at or above ``name`` (``car`` -> ``vehicle``).

There is exactly one name for "no class": :data:`UNLABELED` (``"unlabeled"``); the spellings listed as
``unlabeled_aliases`` (``unlabelled``, ``unknown``, ``void``, ``background``, ...) are mapped onto it by
:func:`normalize_class_name`, which readers and the Replicator adapters call on every class name they emit.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError

__all__ = [
    "UNLABELED",
    "UNLABELED_ID",
    "TAXONOMY_FILENAME",
    "TaxonomyClass",
    "Taxonomy",
    "load_taxonomy",
    "default_taxonomy",
    "normalize_class_name",
    "parent_of",
    "ancestors",
    "resolve",
    "head_of",
    "class_id",
    "roll_up_frame",
]

#: The one name SimGap uses for points without a class.
UNLABELED = "unlabeled"
UNLABELED_ID = 0
TAXONOMY_FILENAME = "taxonomy.yaml"

_KINDS = ("thing", "stuff", "ignore")
# Built-in fallback so that "unlabelled" is normalised even where no taxonomy file can be found.
_BUILTIN_ALIASES = frozenset({"unlabelled", "unknown", "void", "background", "undefined", "none"})


@dataclass(frozen=True)
class TaxonomyClass:
    """One class of the taxonomy.

    Attributes:
        name: the class name (lower case, ``snake_case``).
        id: its semantic id (unique in the taxonomy).
        parent: the parent class name, ``None`` for a root.
        kind: ``"thing"`` (objects with instance ids), ``"stuff"`` (background) or ``"ignore"`` (unlabeled).
        head: whether the gate scores the class by default (fine classes roll up to their head).
    """

    name: str
    id: int
    parent: str | None
    kind: str
    head: bool


class Taxonomy:
    """A validated class tree (build one with :func:`load_taxonomy`).

    Args:
        classes: the classes; parents must name classes in the list and form no cycle.
        aliases: extra spellings of :data:`UNLABELED`.
        source: where the classes came from (for error messages).

    Raises:
        SimGapInputError: duplicate names or ids, an unknown parent, a cycle, no ``unlabeled`` class with id 0.
    """

    def __init__(
        self,
        classes: Collection[TaxonomyClass],
        aliases: Collection[str] = (),
        source: str = "taxonomy",
        scene_tail: Collection[str] = (),
    ):
        self.source = source
        self._by_name: dict[str, TaxonomyClass] = {}
        self._by_id: dict[int, TaxonomyClass] = {}
        for c in classes:
            if c.name in self._by_name:
                raise SimGapInputError(f"{source}: class {c.name!r} is defined twice")
            if c.id in self._by_id:
                raise SimGapInputError(f"{source}: id {c.id} is used by {self._by_id[c.id].name!r} and {c.name!r}")
            self._by_name[c.name] = c
            self._by_id[c.id] = c
        unknown = [n for n in scene_tail if n not in self._by_name]
        if unknown:
            raise SimGapInputError(f"{source}: scene_tail_classes {unknown} are not classes of the taxonomy")
        #: The classes a simulator labels at: every head class, plus the tail classes it renders as their own
        #: class (``wheelchair_user``). Real classes are rolled up onto it before they are compared.
        self.scene_vocabulary = frozenset(
            [c.name for c in self._by_name.values() if c.head] + [str(n) for n in scene_tail]
        )
        root = self._by_name.get(UNLABELED)
        if root is None or root.id != UNLABELED_ID or root.parent is not None:
            raise SimGapInputError(f"{source}: needs a root class {UNLABELED!r} with id {UNLABELED_ID}")
        for c in self._by_name.values():
            if c.parent is not None and c.parent not in self._by_name:
                raise SimGapInputError(f"{source}: class {c.name!r} has unknown parent {c.parent!r}")
        for c in self._by_name.values():
            seen = {c.name}
            p = c.parent
            while p is not None:
                if p in seen:
                    raise SimGapInputError(f"{source}: parent cycle through {c.name!r}")
                seen.add(p)
                p = self._by_name[p].parent
        self.aliases = frozenset(a.lower() for a in aliases) | _BUILTIN_ALIASES

    # --- lookup ---------------------------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.normalize(name) in self._by_name

    def __iter__(self) -> Iterator[TaxonomyClass]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> tuple[str, ...]:
        """Every class name, in file order."""
        return tuple(self._by_name)

    def normalize(self, name: str) -> str:
        """``name`` with an alias of :data:`UNLABELED` replaced by it (other names are returned unchanged)."""
        return normalize_class_name(name, self.aliases)

    def get(self, name: str) -> TaxonomyClass:
        """The class called ``name`` (aliases of ``unlabeled`` accepted).

        Raises:
            SimGapInputError: ``name`` is not in the taxonomy (the message suggests close names).
        """
        key = self.normalize(name)
        c = self._by_name.get(key)
        if c is None:
            import difflib

            close = difflib.get_close_matches(key, self._by_name, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SimGapInputError(f"class {name!r} is not in the SimGap taxonomy ({self.source}){hint}")
        return c

    def by_id(self, class_id: int) -> TaxonomyClass:
        """The class whose semantic id is ``class_id``.

        Raises:
            SimGapInputError: no class has that id.
        """
        c = self._by_id.get(int(class_id))
        if c is None:
            raise SimGapInputError(f"semantic id {class_id} is not in the SimGap taxonomy ({self.source})")
        return c

    def parent_of(self, name: str) -> str | None:
        """The parent class of ``name`` (``None`` for a root)."""
        return self.get(name).parent

    def ancestors(self, name: str) -> list[str]:
        """``name``'s parent, grandparent, ... up to its root (empty for a root)."""
        out: list[str] = []
        p = self.get(name).parent
        while p is not None:
            out.append(p)
            p = self._by_name[p].parent
        return out

    def resolve(self, name: str, available: Collection[str]) -> str | None:
        """``name`` if it is in ``available``, else its nearest ancestor in ``available``, else ``None``.

        Args:
            name: a taxonomy class (or an alias of ``unlabeled``).
            available: class names that can stand in (e.g. the classes a reference bank has exemplars of).
                Names outside the taxonomy are allowed and simply never match an ancestor.

        Raises:
            SimGapInputError: ``name`` is not in the taxonomy.
        """
        avail = {self.normalize(a) for a in available}
        key = self.get(name).name
        for cand in (key, *self.ancestors(key)):
            if cand in avail:
                return cand
        return None

    def head_of(self, name: str) -> str:
        """The nearest head class at or above ``name`` (``car`` -> ``vehicle``; a head returns itself)."""
        c = self.get(name)
        for cand in (c.name, *self.ancestors(c.name)):
            if self._by_name[cand].head:
                return cand
        return c.name  # a root without the head flag stands for itself

    def class_id(self, name: str) -> int:
        """The semantic id of ``name``."""
        return self.get(name).id

    def children(self, name: str) -> list[str]:
        """The direct children of ``name``."""
        key = self.get(name).name
        return [c.name for c in self._by_name.values() if c.parent == key]


def normalize_class_name(name: str, aliases: Collection[str] = _BUILTIN_ALIASES) -> str:
    """Map the spellings of "no class" (``unlabelled``, ``Unknown``, ``BACKGROUND``, ...) to :data:`UNLABELED`.

    Args:
        name: a class name.
        aliases: lower-case spellings to treat as unlabeled (default: the built-in set).

    Returns:
        :data:`UNLABELED` for an alias (any case, surrounding blanks ignored), else ``name`` unchanged.
    """
    key = str(name).strip().lower()
    if key == UNLABELED or key in aliases or key in _BUILTIN_ALIASES:
        return UNLABELED
    return name


def _parse(doc: Any, source: str) -> Taxonomy:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("classes"), Mapping):
        raise SimGapInputError(f"{source}: expected a mapping with a 'classes' table")
    aliases = doc.get("unlabeled_aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise SimGapInputError(f"{source}: 'unlabeled_aliases' must be a list of names")
    classes: list[TaxonomyClass] = []
    for name, spec in doc["classes"].items():
        if not isinstance(name, str) or not name:
            raise SimGapInputError(f"{source}: class name {name!r} is not a string")
        if not isinstance(spec, Mapping):
            raise SimGapInputError(f"{source}: class {name!r} must be a mapping (id, parent, kind)")
        cid, parent, kind, head = spec.get("id"), spec.get("parent"), spec.get("kind", "thing"), spec.get("head", False)
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= 0xFFFF:
            raise SimGapInputError(f"{source}: class {name!r} needs an integer id in [0, 65535], got {cid!r}")
        if parent is not None and not isinstance(parent, str):
            raise SimGapInputError(f"{source}: class {name!r} has a non-string parent {parent!r}")
        if kind not in _KINDS:
            raise SimGapInputError(f"{source}: class {name!r} has kind {kind!r}, expected one of {_KINDS}")
        if not isinstance(head, bool):
            raise SimGapInputError(f"{source}: class {name!r} has a non-boolean 'head'")
        classes.append(TaxonomyClass(name, cid, parent, kind, head))
    tail = doc.get("scene_tail_classes", [])
    if not isinstance(tail, list) or not all(isinstance(a, str) for a in tail):
        raise SimGapInputError(f"{source}: 'scene_tail_classes' must be a list of names")
    return Taxonomy(classes, aliases, source, scene_tail=tail)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read a taxonomy file.

    Args:
        path: a taxonomy YAML; ``None`` reads the shipped ``config/taxonomy.yaml`` (cached).

    Returns:
        The validated :class:`Taxonomy`.

    Raises:
        SimGapInputError: a missing/unreadable/invalid file (see :class:`Taxonomy` for the checks).
    """
    if path is None:
        return default_taxonomy()
    return _load(Path(path))


def _load(p: Path) -> Taxonomy:
    from .yaml_io import read_yaml

    return _parse(read_yaml(p, what="taxonomy"), str(p))


@functools.lru_cache(maxsize=1)
def _default(config: str) -> Taxonomy:
    return _load(Path(config) / TAXONOMY_FILENAME)


def default_taxonomy() -> Taxonomy:
    """The shipped taxonomy (``<config_dir>/taxonomy.yaml``), read once per configuration folder."""
    from ..config_files import config_dir

    return _default(str(config_dir()))


def parent_of(name: str) -> str | None:
    """The parent of ``name`` in the shipped taxonomy (``None`` for a root)."""
    return default_taxonomy().parent_of(name)


def ancestors(name: str) -> list[str]:
    """The ancestors of ``name`` in the shipped taxonomy, nearest first."""
    return default_taxonomy().ancestors(name)


def resolve(name: str, available: Collection[str]) -> str | None:
    """``name`` or its nearest ancestor in ``available`` (shipped taxonomy; see :meth:`Taxonomy.resolve`)."""
    return default_taxonomy().resolve(name, available)


def head_of(name: str) -> str:
    """The nearest head class at or above ``name`` in the shipped taxonomy."""
    return default_taxonomy().head_of(name)


def class_id(name: str) -> int:
    """The semantic id of ``name`` in the shipped taxonomy."""
    return default_taxonomy().class_id(name)


def roll_up_frame(
    frame: Mapping[str, Any], vocabulary: Collection[str] | None = None, taxonomy: Taxonomy | None = None
) -> Mapping[str, Any]:
    """The frame with every class rolled up onto a vocabulary (``car``/``truck`` -> ``vehicle``, ``road`` -> ground).

    Real datasets label finer than a simulator's scene classes. The gate compares both at the taxonomy's scene
    vocabulary (head classes plus the tail classes simulators render as their own, :attr:`Taxonomy.scene_vocabulary`),
    so that synthetic classes meet real exemplars without a hand-written map. A class in the vocabulary stays; any
    other known class becomes its nearest ancestor in the vocabulary; names the taxonomy does not know are kept.

    Args:
        frame: a frame in the DESIGN.md layout (``info.pointSemantic`` (N,) ids, ``info.idToLabels``).
        vocabulary: the classes to roll up onto (default: the taxonomy's scene vocabulary).
        taxonomy: default: the shipped one.

    Returns:
        A shallow copy with ``info.pointSemantic`` (N,) uint32 re-numbered to the head classes' taxonomy ids,
        ``info.idToLabels`` rebuilt and ``info.pointInstance`` (N,) uint32 re-numbered so that instances of two
        merged classes that shared an id stay apart (0 stays "no instance"); the points and every other key are
        shared with ``frame``.
    """
    import numpy as np

    tax = taxonomy or default_taxonomy()
    vocab = frozenset(vocabulary) if vocabulary is not None else tax.scene_vocabulary
    info = frame["info"]
    names = {int(k): (v["class"] if isinstance(v, Mapping) else str(v)) for k, v in info["idToLabels"].items()}

    def target(name: str) -> str:
        if name in vocab or name not in tax:
            return name
        return tax.resolve(name, vocab) or name

    if all(target(n) == n for n in names.values()):
        # Already at the vocabulary's level (every embedded frame): decided from the label map alone, without a pass
        # over the points, since the gate calls this on every frame it judges.
        return frame
    sem = np.asarray(info["pointSemantic"])
    present, inverse = np.unique(sem, return_inverse=True)
    if all(target(names.get(int(i), "")) == names.get(int(i)) for i in present.tolist()):
        return frame  # only labels no point carries are finer: nothing to copy

    new_ids = np.zeros(present.shape[0], np.uint32)
    labels: dict[int, dict[str, str]] = {}
    taken = {c.id for c in tax}
    spare = max(taken | set(names)) + 1
    for j, old in enumerate(present.tolist()):
        name = names.get(int(old), f"class_{old}")
        if name in tax:
            head = target(name)
            sid = tax.class_id(head)
        else:  # unknown to the taxonomy: kept, on an id no taxonomy class uses
            head, sid = name, next((i for i, n in labels.items() if n["class"] == name), spare)
            spare += sid == spare
        new_ids[j] = sid
        labels[int(sid)] = {"class": head}
    inst = np.asarray(info.get("pointInstance", np.zeros(sem.shape[0], np.uint32))).astype(np.uint64)
    new_inst = np.zeros(sem.shape[0], np.uint32)
    has = inst != 0
    if has.any():
        key = (sem[has].astype(np.uint64) << np.uint64(32)) | (inst[has] & np.uint64(0xFFFFFFFF))
        new_inst[has] = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.uint32) + 1
    out = dict(frame)
    out["info"] = {
        **info,
        "pointSemantic": new_ids[inverse.reshape(-1)],
        "pointInstance": new_inst,
        "idToLabels": labels,
    }
    return out
