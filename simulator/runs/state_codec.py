"""The simulation's state as plain data: a JSON tree, numpy arrays and torch tensors.

No pickle: a checkpoint must not be able to run code. Written by hand because pickle's
safe subsets (torch's `weights_only`) cannot express the objects a simulation holds without
allow-listing callables that reach arbitrary code, and because the state can be restored
*into* a freshly built model, so only data ever comes from the file.

`encode` walks the object graph from the model; `decode` walks the freshly built model in
step with the saved tree and sets the saved values on the objects it finds there (objects
of privsim's own classes that the fresh model lacks are created empty and filled the same
way). Shared objects stay shared (a memo of references), torch modules and optimisers
are restored in place through their `load_state_dict`, random generators through their
state. Functions and bound methods, configuration (pydantic) objects and Mesa's agent
registry are structure, not state: they are kept from the fresh model.
"""

from __future__ import annotations

import importlib
import random
import types
import weakref
from collections import OrderedDict, defaultdict
from typing import Any

import mesa
import numpy as np
import pydantic
import scipy.sparse as sp
import torch
from torch import nn

from simulator.foundations.errors import PrivsimError

OWN_PACKAGES = ("simulator.", "agents.")
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                  "Philox": np.random.Philox, "SFC64": np.random.SFC64,
                  "MT19937": np.random.MT19937}
SPARSE = {"csr": sp.csr_matrix, "csc": sp.csc_matrix}
FACTORIES: dict[str, type] = {"list": list, "dict": dict, "int": int, "float": float,
                              "set": set}
SKIPPED_MODEL_ATTRIBUTES = frozenset({"_agents", "_agents_by_type", "_all_agents",
                                      "_agents_by_type_cache"})


class CheckpointFormatError(PrivsimError):
    """A checkpoint that does not describe a state privsim can restore."""


def _is_structure(value: Any) -> bool:
    """Values kept from the freshly built model rather than saved: code (functions, bound
    methods, classes), configuration, and Mesa's agent registry."""
    return isinstance(value, types.FunctionType | types.MethodType | types.BuiltinFunctionType
                      | types.BuiltinMethodType | type | pydantic.BaseModel
                      | mesa.agent.AgentSet | weakref.WeakKeyDictionary)


def _own_class(cls: type) -> bool:
    return cls.__module__.startswith(OWN_PACKAGES) and not issubclass(
        cls, nn.Module | pydantic.BaseModel | BaseException | torch.optim.Optimizer)


class Encoder:
    """Turns an object graph into a JSON tree plus named arrays and tensors."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self._memo: dict[int, int] = {}
        self._keep: list[Any] = []  # keeps memoised objects alive while ids are in use

    def _remember(self, value: Any) -> int | None:
        """The reference number of `value` if already encoded; else registers it."""
        ident = id(value)
        if ident in self._memo:
            return self._memo[ident]
        self._memo[ident] = len(self._memo)
        self._keep.append(value)
        return None

    def encode(self, value: Any, path: str) -> Any:
        """The JSON-able form of `value` (found at `path`, named in errors)."""
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return {"$float": repr(value)} if value != value or value in (
                float("inf"), float("-inf")) else value
        if isinstance(value, np.generic):
            return {"$scalar": value.dtype.str, "value": self.encode(value.item(), path)}
        if _is_structure(value):
            return {"$structure": True}
        ref = self._remember(value) if not isinstance(value, tuple) else None
        if ref is not None:
            return {"$ref": ref}
        number = self._memo.get(id(value))
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise CheckpointFormatError(f"{path}: an array of Python objects cannot be "
                                            "checkpointed")
            key = f"a{len(self.arrays)}"
            self.arrays[key] = value
            return {"$array": key, "id": number}
        if isinstance(value, torch.Tensor):
            return {"$tensor": self._tensor(value), "id": number}
        if isinstance(value, torch.Generator):
            return {"$torch_generator": self._tensor(value.get_state()),
                    "device": str(value.device), "id": number}
        if isinstance(value, torch.device):
            return {"$device": str(value), "id": number}
        if isinstance(value, torch.dtype):
            return {"$dtype": str(value).removeprefix("torch."), "id": number}
        if isinstance(value, np.random.Generator):
            bits = value.bit_generator
            return {"$generator": type(bits).__name__, "state": self.encode(bits.state, path),
                    "id": number}
        if isinstance(value, random.Random):
            return {"$random": self.encode(value.getstate(), path), "id": number}
        if isinstance(value, nn.Module):
            state = value.state_dict(keep_vars=True)
            return {"$module": type(value).__qualname__, "id": number,
                    "training": [m.training for m in value.modules()],
                    "state": {k: self.encode(t, f"{path}.{k}") for k, t in state.items()}}
        if isinstance(value, torch.optim.Optimizer):
            return {"$optimizer": type(value).__qualname__, "id": number,
                    "state": self.encode(value.state_dict(), path)}
        if sp.issparse(value):
            return self._sparse(value, path, number)
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return {"$list": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)],
                    "id": number}
        if isinstance(value, set | frozenset):
            kind = "$frozenset" if isinstance(value, frozenset) else "$set"
            return {kind: [self.encode(v, path) for v in sorted(value, key=repr)], "id": number}
        if isinstance(value, dict):
            return self._dict(value, path, number)
        cls = type(value)
        if _own_class(cls):
            return {"$object": f"{cls.__module__}:{cls.__qualname__}", "id": number,
                    "attributes": {name: self.encode(v, f"{path}.{name}")
                                   for name, v in _attributes(value).items()
                                   if not (path == "model" and name in SKIPPED_MODEL_ATTRIBUTES)}}
        raise CheckpointFormatError(
            f"{path}: a {cls.__module__}.{cls.__qualname__} cannot be checkpointed")

    def _tensor(self, tensor: torch.Tensor) -> dict[str, Any]:
        key = f"t{len(self.tensors)}"
        self.tensors[key] = tensor.detach().cpu()
        return {"key": key, "device": str(tensor.device),
                "parameter": isinstance(tensor, nn.Parameter),
                "requires_grad": tensor.requires_grad}

    def _sparse(self, value: Any, path: str, number: int | None) -> dict[str, Any]:
        matrix = value.tocsr() if value.format not in SPARSE else value
        return {"$sparse": matrix.format, "shape": list(matrix.shape), "id": number,
                "data": self.encode(matrix.data, path),
                "indices": self.encode(matrix.indices, path),
                "indptr": self.encode(matrix.indptr, path)}

    def _dict(self, value: dict, path: str, number: int | None) -> dict[str, Any]:
        kind = "dict"
        factory = None
        if isinstance(value, defaultdict):
            kind = "defaultdict"
            factory = getattr(value.default_factory, "__name__", None)
            if factory not in FACTORIES:
                raise CheckpointFormatError(f"{path}: a defaultdict of {factory} cannot be "
                                            "checkpointed")
        elif isinstance(value, OrderedDict):
            kind = "ordered"
        return {"$dict": [[self.encode(k, path), self.encode(v, f"{path}[{k!r}]")]
                          for k, v in value.items()],
                "kind": kind, "factory": factory, "id": number}


def _attributes(value: Any) -> dict[str, Any]:
    found = dict(vars(value)) if hasattr(value, "__dict__") else {}
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name != "__dict__" and hasattr(value, name):
                found[name] = getattr(value, name)
    return found


class Decoder:
    """Restores an encoded tree into a freshly built object graph."""

    def __init__(self, arrays: dict[str, np.ndarray], tensors: dict[str, torch.Tensor]) -> None:
        self.arrays = arrays
        self.tensors = tensors
        self._memo: dict[int, Any] = {}

    def decode(self, node: Any, current: Any, path: str) -> Any:
        """The value `node` describes; `current` is what the fresh model holds there (reused
        and filled in place where it is the same kind of object)."""
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list):
            raise CheckpointFormatError(f"{path}: unexpected list")
        if not isinstance(node, dict) or len(node) == 0:
            raise CheckpointFormatError(f"{path}: unexpected {type(node).__name__}")
        tag = next(iter(node))
        handler = _HANDLERS.get(tag)
        if handler is None:
            raise CheckpointFormatError(f"{path}: unknown entry {tag!r}")
        return handler(self, node, current, path)

    def _register(self, node: dict, value: Any) -> Any:
        number = node.get("id")
        if number is not None:
            self._memo[int(number)] = value
        return value

    def _tensor(self, spec: dict, path: str) -> torch.Tensor:
        try:
            tensor = self.tensors[spec["key"]]
        except KeyError:
            raise CheckpointFormatError(f"{path}: tensor {spec.get('key')!r} missing") from None
        device = torch.device(spec["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CheckpointFormatError(f"{path}: saved on {device}, and CUDA is not "
                                        "available here")
        tensor = tensor.to(device)
        if spec["parameter"]:
            return nn.Parameter(tensor, requires_grad=bool(spec["requires_grad"]))
        return tensor.requires_grad_(bool(spec["requires_grad"]))


def _float(self: Decoder, node: dict, current: Any, path: str) -> float:
    text = node["$float"]
    if text not in ("nan", "inf", "-inf"):
        raise CheckpointFormatError(f"{path}: bad float {text!r}")
    return float(text)


def _scalar(self: Decoder, node: dict, current: Any, path: str) -> Any:
    dtype = np.dtype(node["$scalar"])
    if dtype.hasobject:
        raise CheckpointFormatError(f"{path}: object scalar")
    return dtype.type(self.decode(node["value"], None, path))


def _ref(self: Decoder, node: dict, current: Any, path: str) -> Any:
    try:
        return self._memo[int(node["$ref"])]
    except (KeyError, ValueError):
        raise CheckpointFormatError(f"{path}: reference to nothing") from None


def _structure(self: Decoder, node: dict, current: Any, path: str) -> Any:
    return current


def _array(self: Decoder, node: dict, current: Any, path: str) -> np.ndarray:
    try:
        return self._register(node, self.arrays[node["$array"]])
    except KeyError:
        raise CheckpointFormatError(f"{path}: array {node['$array']!r} missing") from None


def _tensor_node(self: Decoder, node: dict, current: Any, path: str) -> torch.Tensor:
    return self._register(node, self._tensor(node["$tensor"], path))


def _torch_generator(self: Decoder, node: dict, current: Any, path: str) -> torch.Generator:
    device = torch.device(node["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointFormatError(f"{path}: saved on {device}, and CUDA is not available")
    generator = current if isinstance(current, torch.Generator) and \
        current.device == device else torch.Generator(device=device)
    state = self._tensor(node["$torch_generator"], path).cpu()
    if state.dtype != torch.uint8:
        raise CheckpointFormatError(f"{path}: a generator state is bytes")
    generator.set_state(state)
    return self._register(node, generator)


def _device(self: Decoder, node: dict, current: Any, path: str) -> torch.device:
    return self._register(node, torch.device(str(node["$device"])))


def _dtype(self: Decoder, node: dict, current: Any, path: str) -> torch.dtype:
    dtype = getattr(torch, str(node["$dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise CheckpointFormatError(f"{path}: {node['$dtype']!r} is not a torch dtype")
    return self._register(node, dtype)


def _generator(self: Decoder, node: dict, current: Any, path: str) -> np.random.Generator:
    bits = BIT_GENERATORS.get(node["$generator"])
    if bits is None:
        raise CheckpointFormatError(f"{path}: unknown bit generator {node['$generator']!r}")
    generator = current if isinstance(current, np.random.Generator) and \
        isinstance(current.bit_generator, bits) else np.random.Generator(bits())
    try:
        generator.bit_generator.state = self.decode(node["state"], None, path)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointFormatError(f"{path}: bad generator state ({exc})") from None
    return self._register(node, generator)


def _random(self: Decoder, node: dict, current: Any, path: str) -> random.Random:
    generator = current if type(current) is random.Random else random.Random()
    try:
        generator.setstate(self.decode(node["$random"], None, path))
    except (TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"{path}: bad random state ({exc})") from None
    return self._register(node, generator)


def _module(self: Decoder, node: dict, current: Any, path: str) -> nn.Module:
    if not isinstance(current, nn.Module) or type(current).__qualname__ != node["$module"]:
        raise CheckpointFormatError(f"{path}: the checkpoint holds a {node['$module']}, the "
                                    f"model a {type(current).__name__}")
    self._register(node, current)
    own = current.state_dict(keep_vars=True)
    saved = node["state"]
    if set(saved) != set(own):
        raise CheckpointFormatError(f"{path}: the checkpoint's {node['$module']} has other "
                                    "parameters")
    with torch.no_grad():
        for name, spec in saved.items():
            target = own[name]
            number = spec.get("id") if isinstance(spec, dict) else None
            if isinstance(spec, dict) and "$ref" in spec:
                raise CheckpointFormatError(f"{path}.{name}: shared module parameters")
            value = self._tensor(spec["$tensor"], f"{path}.{name}")
            if value.shape != target.shape or value.dtype != target.dtype:
                raise CheckpointFormatError(f"{path}.{name}: shape or type differs")
            target.copy_(value)
            target.requires_grad_(value.requires_grad)
            if number is not None:
                self._memo[int(number)] = target
    for module, training in zip(current.modules(), node["training"], strict=True):
        module.training = bool(training)
    return current


def _optimizer(self: Decoder, node: dict, current: Any, path: str) -> torch.optim.Optimizer:
    if not isinstance(current, torch.optim.Optimizer) or \
            type(current).__qualname__ != node["$optimizer"]:
        raise CheckpointFormatError(f"{path}: the checkpoint holds a {node['$optimizer']}, "
                                    f"the model a {type(current).__name__}")
    try:
        current.load_state_dict(self.decode(node["state"], None, path))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointFormatError(f"{path}: {exc}") from None
    return self._register(node, current)


def _sparse(self: Decoder, node: dict, current: Any, path: str) -> Any:
    cls = SPARSE.get(node["$sparse"])
    if cls is None:
        raise CheckpointFormatError(f"{path}: unknown sparse format {node['$sparse']!r}")
    parts = [self.decode(node[k], None, path) for k in ("data", "indices", "indptr")]
    try:
        matrix = cls(tuple(parts), shape=tuple(int(n) for n in node["shape"]))
    except (ValueError, TypeError) as exc:
        raise CheckpointFormatError(f"{path}: {exc}") from None
    return self._register(node, matrix)


def _tuple(self: Decoder, node: dict, current: Any, path: str) -> tuple:
    items = node["$tuple"]
    old = current if isinstance(current, tuple) and len(current) == len(items) else None
    return tuple(self.decode(v, old[i] if old else None, f"{path}[{i}]")
                 for i, v in enumerate(items))


def _list(self: Decoder, node: dict, current: Any, path: str) -> list:
    result: list[Any] = self._register(node, [])
    old = current if isinstance(current, list) else []
    for i, item in enumerate(node["$list"]):
        result.append(self.decode(item, old[i] if i < len(old) else None, f"{path}[{i}]"))
    return result


def _set(self: Decoder, node: dict, current: Any, path: str) -> Any:
    kind = "$frozenset" if "$frozenset" in node else "$set"
    values = [self.decode(v, None, path) for v in node[kind]]
    return self._register(node, frozenset(values) if kind == "$frozenset" else set(values))


def _dict(self: Decoder, node: dict, current: Any, path: str) -> dict:
    kind = node.get("kind")
    if kind == "defaultdict":
        factory = FACTORIES.get(node.get("factory"))  # type: ignore[arg-type]
        if factory is None:
            raise CheckpointFormatError(f"{path}: unknown defaultdict factory")
        result: dict = defaultdict(factory)
    elif kind == "ordered":
        result = OrderedDict()
    elif kind == "dict":
        result = {}
    else:
        raise CheckpointFormatError(f"{path}: unknown mapping kind {kind!r}")
    self._register(node, result)
    old = current if isinstance(current, dict) else {}
    for pair in node["$dict"]:
        if not isinstance(pair, list) or len(pair) != 2:
            raise CheckpointFormatError(f"{path}: bad mapping entry")
        key = self.decode(pair[0], None, path)
        try:
            previous = old.get(key)
        except TypeError:
            raise CheckpointFormatError(f"{path}: unhashable key") from None
        result[key] = self.decode(pair[1], previous, f"{path}[{key!r}]")
    return result


def _object(self: Decoder, node: dict, current: Any, path: str) -> Any:
    cls = _own_class_named(node["$object"], path)
    target = current if type(current) is cls else cls.__new__(cls)
    self._register(node, target)
    saved = node["attributes"]
    if not isinstance(saved, dict):
        raise CheckpointFormatError(f"{path}: bad attributes")
    present = _attributes(target) if target is current else {}
    for name, value in saved.items():
        if not isinstance(name, str) or name.startswith("__"):
            raise CheckpointFormatError(f"{path}: bad attribute name {name!r}")
        previous = present.get(name)
        if previous is None and target is not current and isinstance(value, dict) and \
                ("$module" in value or "$optimizer" in value):
            previous = _rebuild(target, name, path)
        object.__setattr__(target, name, self.decode(value, previous, f"{path}.{name}"))
    return target


def _rebuild(target: Any, name: str, path: str) -> Any:
    """A module or optimiser for an object the fresh model did not have yet, built by the
    object itself (`checkpoint_rebuild(name)`) so its parameters can be loaded into it."""
    rebuild = getattr(target, "checkpoint_rebuild", None)
    if rebuild is None:
        raise CheckpointFormatError(f"{path}.{name}: cannot be rebuilt")
    return rebuild(name)


def _own_class_named(name: Any, path: str) -> type[object]:
    """A class privsim defines, by `module:qualname`; nothing else is ever looked up."""
    module_name, _, qualname = str(name).partition(":")
    if not module_name.startswith(OWN_PACKAGES) or not qualname.isidentifier():
        raise CheckpointFormatError(f"{path}: {name!r} is not a privsim class")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise CheckpointFormatError(f"{path}: no module {module_name!r}") from None
    cls = getattr(module, qualname, None)
    if not isinstance(cls, type) or cls.__module__ != module_name or not _own_class(cls):
        raise CheckpointFormatError(f"{path}: {name!r} is not a restorable privsim class")
    return cls


_HANDLERS = {
    "$float": _float, "$scalar": _scalar, "$ref": _ref, "$structure": _structure,
    "$array": _array, "$tensor": _tensor_node, "$torch_generator": _torch_generator,
    "$device": _device, "$dtype": _dtype, "$generator": _generator, "$random": _random,
    "$module": _module, "$optimizer": _optimizer, "$sparse": _sparse, "$tuple": _tuple,
    "$list": _list, "$set": _set, "$frozenset": _set, "$dict": _dict, "$object": _object,
}
