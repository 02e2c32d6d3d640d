"""Pipeline configs (configs/*.yaml): loading, schema validation and cross-reference checks.

The JSON schema lives in ``workflow/schemas/config.schema.yaml``; the Snakefile enforces it with
``snakemake.utils.validate`` and `load_config` applies the same schema (with its defaults) when a
config is read outside Snakemake. `check_config` adds what a schema cannot express: names that
refer to other entries (a grid block's variants, a feature run's task, ...). `settings` is the
typed view of the option sections (``tables``, ``figures``, ``verify``) with the schema's
defaults, so that no reader restates a default.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ghuda.config import MEASURES, MODES, ORDERS, ConfigError

SCHEMA_RELPATH = Path("workflow") / "schemas" / "config.schema.yaml"


def repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) that holds the config schema."""
    here = (start or Path.cwd()).resolve()
    for cand in (here, *here.parents):
        if (cand / SCHEMA_RELPATH).is_file():
            return cand
    raise ConfigError(f"cannot find {SCHEMA_RELPATH} at or above {here}; run from the "
                      "repository root (where the Snakefile is)")


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """A YAML file's content; a missing file or a syntax error (positions naming the file) is a
    ConfigError."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def validate_schema(data: Any, source: str = "config", schema: str = SCHEMA_RELPATH.name,
                    fill_defaults: bool = True, root: Path | None = None) -> Any:
    """Validate `data` against a schema of workflow/schemas/ (in place, filling the schema's
    defaults unless `fill_defaults` is false); the error names the offending key. `root` is the
    repository (default: found from the working directory)."""
    import jsonschema

    spec = load_yaml((root or repo_root()) / SCHEMA_RELPATH.with_name(schema))
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):  # jsonschema FAQ recipe
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema_)

    cls = jsonschema.validators.extend(base, {"properties": set_defaults}) if fill_defaults \
        else base
    errors = sorted(cls(spec).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
        raise ConfigError(f"{source}: invalid value at '{where}': {err.message}")
    return data


def load_config(path: str | os.PathLike[str], check_registry: bool = False) -> dict[str, Any]:
    """Read, schema-validate (defaults filled) and cross-check a pipeline config file."""
    path = Path(path)
    config = load_yaml(path)
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    validate_schema(config, source=str(path))
    check_config(config, source=str(path), check_registry=check_registry)
    return config


@functools.cache
def _schema() -> dict[str, Any]:
    return load_yaml(repo_root(Path(__file__).parent) / SCHEMA_RELPATH)


def schema_defaults(*section: str) -> dict[str, Any]:
    """{key: default} of the schema's keys of the (nested) section, e.g. ("tables", "ladder")."""
    node = _schema()
    for key in section:
        node = node["properties"][key]
    return {k: copy.deepcopy(v["default"]) for k, v in node["properties"].items()
            if "default" in v}


@dataclass(frozen=True)
class TablesSettings:
    """``tables``: the baseline variant, the rows, the protocol and confidence of the tables,
    the GH++ t sweep and the regime ladder (the last three absent unless set)."""

    baseline: str
    protocol: str
    confidence: float
    rows: list[str] | None = None
    t_sweep: dict[str, Any] | None = None
    ladder: dict[str, Any] | None = None


@dataclass(frozen=True)
class FiguresSettings:
    """``figures``: t-SNE points and perplexity, the weights-vs-angle grid."""

    tsne_max_points: int
    tsne_perplexity: float
    weights_angle_grid: int


@dataclass(frozen=True)
class VerifySettings:
    """``verify``: the protocol compared with published numbers and the tolerance."""

    protocol: str
    tolerance_pp: float
    fail_on_mismatch: bool


@dataclass(frozen=True)
class Settings:
    """The option sections of a pipeline config, defaults filled from the schema."""

    tables: TablesSettings
    figures: FiguresSettings
    verify: VerifySettings


def settings(config: Mapping[str, Any]) -> Settings:
    """`Settings` of `config` (a section or key it omits has the schema's default)."""
    def section(name: str) -> dict[str, Any]:
        return {**schema_defaults(name), **(config.get(name) or {})}

    return Settings(TablesSettings(**section("tables")), FiguresSettings(**section("figures")),
                    VerifySettings(**section("verify")))


def _unknown(source: str, where: str, name: str, allowed: Iterable[str]) -> ConfigError:
    return ConfigError(f"{source}: '{where}' names {name!r}, which is not defined; "
                       f"allowed: {sorted(allowed)}")


def check_config(config: Mapping[str, Any], source: str = "config",
                 check_registry: bool = False) -> None:
    """Cross-reference checks; with `check_registry`, method and harmonizer names are checked
    against ``ghuda.methods.names()`` and ``ghuda.harmonize.names()`` (imports torch)."""
    datasets, variants = config["datasets"], config["variants"]
    for i, block in enumerate(config["grid"]):
        where = f"grid/{i}({block['name']})"
        for ds in block.get("datasets", datasets):
            if ds not in datasets:
                raise _unknown(source, f"{where}/datasets", ds, datasets)
            for task in block.get("tasks", []):
                if task not in datasets[ds]["tasks"]:
                    raise _unknown(source, f"{where}/tasks", task, datasets[ds]["tasks"])
        for v in block["variants"]:
            if v not in variants:
                raise _unknown(source, f"{where}/variants", v, variants)
    switches = {"mode": MODES, "order": ORDERS, "measure": MEASURES}  # harmonizer.<key>
    for label, var in variants.items():
        for key, allowed in switches.items():
            if key in var and var[key] not in allowed:
                raise ConfigError(f"{source}: invalid value at 'variants/{label}/{key}': "
                                  f"{var[key]!r} is not one of {list(allowed)}")
    for name, ds in datasets.items():
        for method, mblock in ds.get("methods", {}).items():
            for task in mblock.get("tasks", {}):
                if task not in ds["tasks"]:
                    raise _unknown(source, f"datasets/{name}/methods/{method}/tasks", task,
                                   ds["tasks"])
    tables = settings(config).tables
    for v in [tables.baseline, *(tables.rows or [])]:
        if v not in variants:
            raise _unknown(source, "tables/rows", v, variants)
    sweep = tables.t_sweep
    if sweep:
        for v in sweep["variants"]:
            if v not in variants:
                raise _unknown(source, "tables/t_sweep/variants", v, variants)
            if "t" not in variants[v].get("options", {}):
                raise ConfigError(f"{source}: 'tables/t_sweep/variants' entry {v!r} has no "
                                  "options.t; every swept variant must set t")
    if check_registry:
        _check_registry(config, source)


def _check_registry(config: Mapping[str, Any], source: str) -> None:
    import ghuda.harmonize
    import ghuda.methods

    methods, harmonizers = set(ghuda.methods.names()), set(ghuda.harmonize.names())
    for i, block in enumerate(config["grid"]):
        for m in block["methods"]:
            if m not in methods:
                raise _unknown(source, f"grid/{i}({block['name']})/methods", m, methods)
    for label, var in config["variants"].items():
        if var["harmonizer"] not in harmonizers:
            raise _unknown(source, f"variants/{label}/harmonizer", var["harmonizer"],
                           harmonizers)
