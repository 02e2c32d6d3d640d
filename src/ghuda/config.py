"""Run configuration: schema, defaults, ``--set`` overrides, validation, hashing (docs/config.md).

A config is a two-level YAML mapping (section -> key -> value). `resolve` fills defaults and
rejects unknown keys and wrong types; `validate` then checks names against the registries
(datasets, domains, backbones, methods, harmonizers) and the method's and harmonizer's own
options, so that every error is raised before any work starts and names the key and the
allowed values. `sha256` hashes the resolved config canonically; a checkpoint stores it, and a
run refuses to resume under a different hash.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import inspect
import io
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration problem (a run config, or a pipeline config: `ghuda.pipeline.config`);
    the message names the key and the allowed values."""


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """Prefix a `ConfigError` raised inside with `where` (the file, the entry) it was found."""
    try:
        yield
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


@dataclass(frozen=True)
class Field:
    """One config key: accepted type(s), default, optional fixed choices or check."""

    types: tuple[type, ...]
    default: Any
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _device(value: Any) -> str | None:
    ok = value in {"auto", "cpu", "cuda"} or re.fullmatch(r"cuda:\d+", value)
    return None if ok else "allowed values: auto, cpu, cuda, cuda:<index>"


def _tri(value: Any) -> str | None:
    return None if value in {"auto", True, False} else "allowed values: auto, true, false"


INT, FLOAT, STR, BOOL, DICT = (int,), (float,), (str,), (bool,), (dict,)
# The values of the harmonizer switches (a pipeline config's variants set them too).
MODES = ("direct", "weighted_loss")
ORDERS = ("released", "swapped")
MEASURES = ("released", "stepped")

SCHEMA: dict[str, dict[str, Field]] = {
    "dataset": {
        "name": Field(STR, "digits_mini"),
        "source": Field(STR, "synth"),
        "target": Field(STR, "optdigits"),
        "root": Field(STR, None, nullable=True),
        # a listed deviation (tables/fidelity.md): the release trains on the whole source
        "source_holdout": Field(BOOL, True),
        # speed only, same tensors: decoded, resized uint8 images cached (ghuda.data.decoded)
        "decoded_cache": Field(BOOL, False),
    },
    "model": {
        "backbone": Field(STR, "digit_cnn"),
        "pretrained": Field(BOOL, False),
        "options": Field(DICT, {}),
    },
    "method": {
        "name": Field(STR, "dann"),
        "params": Field(DICT, {}),
    },
    "harmonizer": {
        "name": Field(STR, "sum"),
        "options": Field(DICT, {}),
        "mode": Field(STR, "direct", choices=MODES),
        "order": Field(STR, "released", choices=ORDERS),
        "measure": Field(STR, "released", choices=MEASURES),
    },
    "train": {
        "steps": Field(INT, 600, check=_positive),
        "batch_size": Field(INT, 32, check=_positive),
        "eval_batch_size": Field(INT, 512, check=_positive),
        "lr": Field(FLOAT, 0.01, check=_positive),
        "lr_schedule": Field(STR, "inv", choices=("inv", "constant")),
        "lr_multipliers": Field(DICT, {}),
        "momentum": Field(FLOAT, 0.9, check=_non_negative),
        "nesterov": Field(BOOL, True),
        "weight_decay": Field(FLOAT, 0.0005, check=_non_negative),
        "eval_every": Field(INT, 100, check=_positive),
        "log_every": Field(INT, 10, check=_positive),
        "checkpoint_every": Field(INT, 100, check=_non_negative),
        "keep_checkpoint": Field(BOOL, False),
        "selection_metric": Field(STR, "acc", choices=("acc", "mean_class_acc")),
        "seed": Field(INT, 0, check=_non_negative),
        "device": Field(STR, "auto", check=_device),
        "threads": Field(INT, None, nullable=True, check=_positive),
        "num_workers": Field(INT, 0, check=_non_negative),
        "amp": Field((str, bool), "auto", check=_tri),
        "amp_dtype": Field(STR, "auto", choices=("auto", "bfloat16", "float16")),
        "deterministic": Field(BOOL, False),
        "save_features": Field(BOOL, False),
    },
}
_TOP_LEVEL: dict[str, Field] = {"variant": Field(STR, None, nullable=True)}
_ORDER = ("dataset", "model", "method", "harmonizer", "variant", "train")
# Sections whose values are free-form mappings checked by their owner (method, harmonizer...).
_FREE = {("model", "options"), ("method", "params"), ("harmonizer", "options"),
         ("train", "lr_multipliers")}


def defaults() -> dict[str, Any]:
    """The default configuration (what an empty file resolves to)."""
    out: dict[str, Any] = {}
    for section in _ORDER:
        if section in _TOP_LEVEL:
            out[section] = _TOP_LEVEL[section].default
        else:
            out[section] = {k: copy.deepcopy(f.default) for k, f in SCHEMA[section].items()}
    return out


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join({int: "int", float: "float", str: "string", bool: "bool",
                        dict: "mapping"}[t] for t in types)


def _coerce(key: str, value: Any, field: Field) -> Any:
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{key}: must not be null (expected {_type_name(field.types)})")
    if float in field.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if float in field.types and isinstance(value, str):
        with contextlib.suppress(ValueError):  # YAML 1.1 reads "1e-3" as a string
            value = float(value)
    ok = isinstance(value, field.types) and not (
        isinstance(value, bool) and bool not in field.types)
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(field.types)}, got "
                          f"{type(value).__name__} {value!r}")
    _check_finite(key, value)
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; allowed values: "
                          f"{', '.join(map(str, field.choices))}")
    if field.check is not None and (problem := field.check(value)):
        raise ConfigError(f"{key}: {value!r} {problem}" if problem.startswith("must")
                          else f"{key}: {value!r} is not allowed; {problem}")
    return value


def _check_finite(key: str, value: Any) -> None:
    """Every number in a config is finite (``inf`` / ``nan`` would fail mid-run, or not at
    all); nested mappings and lists are searched, the message names the full key."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} is not allowed; expected a finite number")
    if isinstance(value, Mapping):
        for name, item in value.items():
            _check_finite(f"{key}.{name}", item)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(f"{key}[{i}]", item)


def _did_you_mean(word: Any, allowed: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(str(word), list(allowed), n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def resolve(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill defaults, reject unknown keys and wrong types (no registry look-ups)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_ORDER))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}{_did_you_mean(unknown[0], _ORDER)}; "
                          f"allowed top-level keys: {', '.join(_ORDER)}")
    cfg = defaults()
    for section, value in raw.items():
        if section in _TOP_LEVEL:
            cfg[section] = _coerce(section, value, _TOP_LEVEL[section])
            continue
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{section}: expected a mapping with keys "
                              f"{', '.join(SCHEMA[section])}, got {value!r}")
        for key, item in value.items():
            if key not in SCHEMA[section]:
                hint = _did_you_mean(key, SCHEMA[section], f"{section}.")
                raise ConfigError(f"unknown key '{section}.{key}'{hint}; allowed keys in "
                                  f"'{section}': {', '.join(SCHEMA[section])}")
            cfg[section][key] = _coerce(f"{section}.{key}", item, SCHEMA[section][key])
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set a.b=value`` overrides (values parsed as YAML) to a raw config."""
    out = copy.deepcopy(raw) if raw else {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.steps=20")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}: cannot parse value {text!r}: {err}") from None
        parts = key.split(".")
        if parts[0] in _TOP_LEVEL and len(parts) == 1:
            out[parts[0]] = value
            continue
        if len(parts) < 2 or (len(parts) > 2 and tuple(parts[:2]) not in _FREE):
            raise ConfigError(f"--set {key}: keys are section.key (e.g. train.steps), or "
                              f"deeper only under {', '.join('.'.join(f) for f in _FREE)}")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def load(path: str | Path | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read, override, resolve and validate a config file (None: defaults only)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        raw = parse_yaml(text, path, what="config file")
        if raw is None:
            raise ConfigError(
                f"config file {path} is empty (no keys): it would train on the package "
                "defaults, which are not configs/digits_mini.yaml's. Name the keys, or omit "
                "--config to train on the defaults on purpose")
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path}: expected a mapping of sections")
    cfg = resolve(apply_overrides(raw, overrides))
    validate(cfg)
    return cfg


def parse_yaml(text: str, path: str | Path, what: str = "") -> Any:
    """``yaml.safe_load`` of `text` read from `path`; a syntax error is a ConfigError whose
    position names the file (not PyYAML's "<unicode string>")."""
    stream = io.StringIO(text)
    stream.name = str(path)  # PyYAML reports positions against the stream's name
    try:
        return yaml.safe_load(stream)
    except yaml.YAMLError as err:
        label = f"{what} {path}" if what else str(path)
        detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        raise ConfigError(f"{label} is not valid YAML: {detail}") from None


# ---------------------------------------------------------------- registry checks


def _choose(key: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: unknown value {value!r}; allowed values: "
                          f"{', '.join(allowed) or '(none registered)'}")


def _check_kwargs(key: str, target: Callable[..., Any], given: Mapping[str, Any],
                  skip: int) -> None:
    """Check keyword options against a callable's signature and simple annotations."""
    params = list(inspect.signature(target).parameters.values())[skip:]
    allowed = {p.name: p for p in params
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: skip type checks, keep name checks
        hints = {}
    for name, value in given.items():
        if name not in allowed:
            raise ConfigError(f"{key}.{name}: unknown option; allowed: "
                              f"{', '.join(allowed) or '(none)'}")
        _check_finite(f"{key}.{name}", value)
        hint = hints.get(name)
        if hint in (int, float, bool, str) and not _fits(value, hint):
            raise ConfigError(f"{key}.{name}: expected {hint.__name__}, got "
                              f"{type(value).__name__} {value!r}")


def _fits(value: Any, hint: type) -> bool:
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def validate(cfg: dict[str, Any]) -> None:
    """Check names and options against the registries; raises `ConfigError`."""
    from ghuda import data, harmonize, methods, models

    ds = cfg["dataset"]
    _choose("dataset.name", ds["name"], list(data.datasets()))
    domains = list(data.domains(ds["name"]))
    _choose("dataset.source", ds["source"], domains)
    _choose("dataset.target", ds["target"], domains)
    if ds["source"] == ds["target"]:
        raise ConfigError(f"dataset.target: equals dataset.source ({ds['source']!r}); "
                          "choose two different domains")

    mdl = cfg["model"]
    _choose("model.backbone", mdl["backbone"], models.names())
    if mdl["pretrained"] and not models.has_imagenet_weights(mdl["backbone"]):
        raise ConfigError(f"model.pretrained: backbone {mdl['backbone']!r} has no ImageNet "
                          "weights; allowed values: false")
    allowed_opts = models.option_names(mdl["backbone"])
    for name in mdl["options"]:
        if name not in allowed_opts:
            takers = [b for b in models.names() if name in models.option_names(b)]
            where = f" ('{name}' is an option of {', '.join(takers)})" if takers else ""
            raise ConfigError(f"model.options.{name}: unknown option for "
                              f"{mdl['backbone']!r}; allowed: {', '.join(allowed_opts)}{where}")
    _check_finite("model.options", mdl["options"])
    try:
        models.check_options(mdl["backbone"], mdl["options"])
    except ValueError as err:
        raise ConfigError(str(err)) from None

    _choose("method.name", cfg["method"]["name"], methods.names())
    method_cls = methods.get(cfg["method"]["name"])
    _check_kwargs("method.params", method_cls.__init__, cfg["method"]["params"], skip=4)
    needed = method_cls.requires_backbone
    if needed is not None and models.kind(mdl["backbone"]) != needed:
        vits = [n for n in models.names() if models.kind(n) == needed]
        raise ConfigError(f"model.backbone: method {method_cls.name!r} needs a {needed} "
                          f"backbone; allowed values: {', '.join(vits)}")

    for group, mult in cfg["train"]["lr_multipliers"].items():
        if not _fits(mult, float) or not math.isfinite(mult) or mult < 0:
            raise ConfigError(f"train.lr_multipliers.{group}: expected a number >= 0, got "
                              f"{mult!r}")

    hz = cfg["harmonizer"]
    _choose("harmonizer.name", hz["name"], harmonize.names())
    _check_harmonizer_options(hz["name"], hz["options"])
    _check_finite("harmonizer.options", hz["options"])
    try:
        harmonize.make(hz["name"], mode=hz["mode"], **hz["options"])
    except ValueError as err:
        raise ConfigError(f"harmonizer.options: {err}") from None


def _harmonizer_options(name: str) -> list[str]:
    """Options harmonizer `name` takes under ``harmonizer.options`` (``mode`` has its own key)."""
    from ghuda import harmonize

    params = list(inspect.signature(type(harmonize.make(name)).__init__).parameters.values())[1:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "mode"]


def _check_harmonizer_options(name: str, options: Mapping[str, Any]) -> None:
    """Each option must be one the harmonizer takes; the error says which harmonizers take it."""
    from ghuda import harmonize

    if "mode" in options:
        raise ConfigError(f"harmonizer.options.mode: set it as harmonizer.mode "
                          f"({' | '.join(MODES)}), not as an option")
    allowed = _harmonizer_options(name)
    for option in options:
        if option in allowed:
            continue
        takers = [n for n in harmonize.names() if option in _harmonizer_options(n)]
        where = (f" '{option}' is an option of {', '.join(takers)}." if takers else "")
        raise ConfigError(f"harmonizer.options.{option}: harmonizer {name!r} has no option "
                          f"{option!r}; its options: {', '.join(allowed) or 'none'}.{where}")


def variant(cfg: Mapping[str, Any]) -> str:
    """The run's variant label: `variant`, or the harmonizer name when unset."""
    return cfg["variant"] or cfg["harmonizer"]["name"]


def sha256(cfg: Mapping[str, Any]) -> str:
    """Hash of the resolved config, independent of key order and YAML formatting."""
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
                ) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every key whose value differs, sorted by key;
    a key present on one side only has the value None on the other."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(differences(a, b, f"{prefix}{key}."))
        elif a != b or type(a) is not type(b):
            out.append((f"{prefix}{key}", a, b))
    return out


def to_yaml(cfg: Mapping[str, Any]) -> str:
    """The resolved config as YAML, sections in schema order."""
    return yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=False)
