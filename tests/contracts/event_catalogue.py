"""Every event type the services can produce, found in their source code (not in a running
scenario, which only ever covers the flows it drives).

The services record events as ``NewEvent(<name>, data, subject=...)``; the name is a string literal,
a module-level constant (``PAYOUT_MADE = "PayoutMade"``, imported from the domain modules), or a
variable carrying a name the domain decided, as ``Event(<name>, {...})`` or a ``(<name>, {...})``
pair. Each module of ``services/<service>/src`` is parsed with :mod:`ast` (nothing is imported, so
a module that fails to import still counts), names are resolved through the module's own constants
and its ``from ... import`` of the service's other modules, and the type is
``cn.pension.<service>.<Name>.v<version>`` (``version=`` of ``NewEvent``, 1 by default).

Besides the names found where events are built, every module-level UPPER_CASE constant whose value
is a CamelCase name and which the service uses counts as an event the service produces: a new way
of building events cannot hide a type from the contract tests. The full type names a service
mentions (the events it consumes: ``"cn.pension.payout.PayoutMade.v1"``,
``f"{ACCOUNT}.ParticipantDied.v1"``) are collected too."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("account", "fund-account", "tax", "payout")

EVENT_NAME = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$")
"""CamelCase of at least two words: ``PayoutMade``, not ``ICBC`` nor ``Active``."""
CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")
FULL_TYPE = re.compile(r"^cn\.pension\.(account|fund-account|tax|payout)\.[A-Z][A-Za-z0-9]*\.v[1-9][0-9]*$")
BUILDERS = ("NewEvent", "Event")


def source_root(service: str) -> Path:
    return REPO / "services" / service / "src"


@dataclass(frozen=True)
class Site:
    """Where an event is built: ``path:line`` and how its name was given."""

    where: str
    name: str | None
    """The resolved event name; None when it is computed (a variable)."""
    version: int = 1


@dataclass
class ServiceEvents:
    service: str
    built: list[Site] = field(default_factory=list)
    """``NewEvent(...)`` and ``Event(...)`` calls and ``(<constant>, {...})`` pairs."""
    constants: dict[str, set[str]] = field(default_factory=dict)
    """Event-name constants in use: value -> where each is defined."""
    mentioned_types: dict[str, set[str]] = field(default_factory=dict)
    """Full event types named in the code (consumed events): type -> where."""

    def names(self) -> set[str]:
        return {s.name for s in self.built if s.name} | set(self.constants)

    def types(self) -> set[str]:
        versions = {(s.name, s.version) for s in self.built if s.name}
        named = {name for name, _ in versions}
        versions |= {(name, 1) for name in self.constants if name not in named}
        return {f"cn.pension.{self.service}.{name}.v{version}" for name, version in versions}

    def unresolved(self) -> list[Site]:
        return [s for s in self.built if s.name is None]


@dataclass
class _Module:
    dotted: str
    path: Path
    tree: ast.Module
    constants: dict[str, str]
    """Module-level ``NAME = "text"`` of this module."""
    namespace: dict[str, str] = field(default_factory=dict)
    """Its constants and the ones it imports from the service's other modules."""


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _string_constants(tree: ast.Module) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name) and CONSTANT.match(target.id):
                    found[target.id] = value.value
    return found


def _parse(service: str) -> dict[str, _Module]:
    root = source_root(service)
    modules = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        dotted = _module_name(root, path)
        modules[dotted] = _Module(dotted, path, tree, _string_constants(tree))
    for module in modules.values():
        module.namespace = dict(module.constants)
        package = module.dotted if module.path.name == "__init__.py" else module.dotted.rpartition(".")[0]
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            source = modules.get(base)
            if source is None:
                continue
            for alias in node.names:
                if alias.name in source.constants:
                    module.namespace[alias.asname or alias.name] = source.constants[alias.name]
    return modules


def _resolve(node: ast.expr | None, namespace: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and value.format_spec is None and value.conversion == -1:
                resolved = _resolve(value.value, namespace)
                if resolved is None:
                    return None
                parts.append(resolved)
            else:
                return None
        return "".join(parts)
    return None


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _version(call: ast.Call) -> int:
    for keyword in call.keywords:
        value = keyword.value
        if keyword.arg == "version" and isinstance(value, ast.Constant) and isinstance(value.value, int):
            return value.value
    return 1


def _is_event_name(text: str | None) -> bool:
    return text is not None and bool(EVENT_NAME.match(text))


def discover(service: str) -> ServiceEvents:
    modules = _parse(service)
    events = ServiceEvents(service)
    used: set[str] = set()
    for module in modules.values():
        where = module.path.relative_to(REPO)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and _callee(node) in BUILDERS:
                first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
                name = _resolve(first, module.namespace)
                resolved = name if _is_event_name(name) else None
                events.built.append(Site(f"{where}:{node.lineno}", resolved, _version(node)))
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
                name, other = (_resolve(e, module.namespace) for e in node.elts)
                # (NAME, data) pairs, not membership tests such as `name in (A, B)`
                if isinstance(node.elts[0], ast.Name) and _is_event_name(name) and not _is_event_name(other) \
                        and not isinstance(node.elts[1], ast.Constant):
                    events.built.append(Site(f"{where}:{node.lineno}", name))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in module.namespace:
                used.add(module.namespace[node.id])
            if isinstance(node, (ast.Constant, ast.JoinedStr)):
                text = _resolve(node, module.namespace)
                if text is not None and FULL_TYPE.match(text):
                    events.mentioned_types.setdefault(text, set()).add(f"{where}:{node.lineno}")
    for module in modules.values():
        for constant, value in module.constants.items():
            if _is_event_name(value) and value in used:
                events.constants.setdefault(value, set()).add(f"{module.path.relative_to(REPO)}:{constant}")
    return events


def catalogue() -> dict[str, ServiceEvents]:
    return {service: discover(service) for service in SERVICES}
