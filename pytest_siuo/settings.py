"""Settings: every option and ini value, validated once into a frozen record.

The plugin reads raw strings from the command line (which wins) and from the ini file
(``[tool.pytest.ini_options]`` in pyproject.toml), and this module turns them into typed values or
a :class:`SettingsError` that names the option, the bad value and the fix. Nothing here imports
pytest, so the same validation serves the plugin and plain-Python users.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .domains import UnknownDomainError, resolve_domain
from .options import OPTIONS, Option
from .thresholds import METRIC_PREFIX, ThresholdError, Thresholds, merge, parse_thresholds

DEFAULT_JUDGE = "gpt-4o-mini-2024-07-18"


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names it and says the fix."""


@dataclass(frozen=True)
class Settings:
    enabled: bool = False
    model: str | None = None
    judge: str = DEFAULT_JUDGE
    model_key_env: str | None = None
    judge_key_env: str | None = None
    data: str | None = None
    data_revision: str | None = None
    domains: tuple[str, ...] = ()
    samples: int = 3
    protocol: str = "strict"
    track: str = "gen"
    thresholds: Thresholds = field(default_factory=Thresholds)
    report: Path | None = None
    concurrency: int = 16
    judge_concurrency: int = 16
    timeout: float = 120.0
    retries: int = 4
    retry_backoff: float = 0.5
    rate_limit_wait: float = 600.0  # seconds one call may wait out 429s
    max_response_mb: float = 8.0  # transport.DEFAULT_MAX_RESPONSE_BYTES
    cache: str = "on"
    cache_dir: Path = Path(".siuo") / "cache"
    max_answer_tokens: int = 500
    temperature: float | None = None
    mcqa_shuffle: str | None = None  # None, a seed such as "7", or "all"
    answers: tuple[Path, ...] = ()  # judge answers from these files instead of a model
    save_answers: Path | None = None
    max_tokens: int | None = None  # token budget of the run (per process)
    baseline: Path | None = None
    save_baseline: Path | None = None
    ignore_drop_below: float = 0.0
    alpha: float = 0.05
    strict_regressions: bool = False
    threshold_on: str = "point"
    inconclusive: str = "pass"
    markdown: Path | None = None
    html: Path | None = None
    judge_check: bool = False
    judge_min_agreement: float = 0.75
    max_errors: int = 0  # samples allowed to end without a verdict before the run fails
    controls: bool = False  # a text-only control per generation sample (controls.py)
    judge_all: bool = False  # judge every answer, not only those that can change a verdict
    progress: float = 10.0  # seconds between progress lines; 0: none

    @property
    def max_response_bytes(self) -> int:
        return int(self.max_response_mb * 1024 * 1024)

    @property
    def adaptive_judging(self) -> bool:
        """Ask the judge only while an answer can change a verdict. Off with --siuo-judge-all
        and whenever a baseline is compared or saved: the baseline test counts every judged
        answer, and answers left unjudged because the majority was already decided would
        bias it."""
        return not (self.judge_all or self.baseline is not None or self.save_baseline is not None)

    @property
    def tracks(self) -> tuple[str, ...]:
        return ("gen", "mcqa") if self.track == "both" else (self.track,)

    def public(self) -> dict[str, Any]:
        """The settings as they may appear in a report: no key material, only env var names."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["thresholds"] = self.thresholds.to_json()
        d["report"] = str(self.report) if self.report else None
        d["cache_dir"] = str(self.cache_dir)
        d["answers"] = [str(p) for p in self.answers]
        d["save_answers"] = str(self.save_answers) if self.save_answers else None
        for key in ("baseline", "save_baseline", "markdown", "html"):
            value = getattr(self, key)
            d[key] = str(value) if value else None
        d["domains"] = list(self.domains)
        from .endpoints import redact

        d["model"] = redact(self.model) if self.model else None
        d["judge"] = redact(self.judge)
        if not self.controls:
            # Off by default and absent then: a run without controls keeps its report as it was.
            del d["controls"]
        return d


# A lookup of raw values by option dest (the ini name is the dest too).
Getter = Callable[[str], Any]


def _int(name: str, raw: str, *, minimum: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}: {value} is too small; use a number >= {minimum}")
    return value


def _float(name: str, raw: str, *, minimum: float, maximum: float | None = None) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{name}: {value} is out of range; use a number {bound}")
    return value


def _choice(name: str, raw: str, choices: Sequence[str]) -> str:
    value = str(raw).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}: {raw!r} is not one of {', '.join(choices)}")
    return value


def _rate(name: str, raw: Any) -> float:
    """A rate in [0, 1]; "15%" is accepted too."""
    text = str(raw).strip()
    if text.endswith("%"):
        return _float(name, text[:-1], minimum=0.0, maximum=100.0) / 100
    return _float(name, text, minimum=0.0, maximum=1.0)


def _removed(opt: Option, where: str, raw: Any) -> None:
    if opt.dest == "siuo_max_drop":
        raise SettingsError(
            f"{where}={raw} is no longer supported: the baseline gate now tests every drop "
            "exactly and keeps the false alarms of an unchanged model under --siuo-alpha, so a "
            "tolerated drop is not needed to stop flapping. To pass significant drops smaller "
            f"than a size you do not care about, use --siuo-ignore-drop-below={raw} (ini: "
            "siuo_ignore_drop_below); see docs/gating.md"
        )
    raise SettingsError(f"{where} is no longer supported: {opt.help}")


def _bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: {raw!r} is not true or false")


def _shuffle(name: str, raw: str) -> str | None:
    value = str(raw).strip().lower()
    if value in ("off", "none", "no"):
        return None
    if value == "all" or value.isdigit():
        return value
    raise SettingsError(
        f"{name}: {raw!r} is neither a seed (a whole number >= 0), 'all' (every rotation of the "
        "options) nor 'off'"
    )


def _env_name(name: str, raw: str) -> str:
    value = str(raw).strip()
    if not value.replace("_", "").isalnum() or value[0].isdigit():
        # A key pasted in place of the variable's name must not be echoed back into a CI log.
        raise SettingsError(
            f"{name} takes the NAME of an environment variable that holds the key "
            "(e.g. MY_JUDGE_KEY), not the key itself; the value given is not a valid name"
        )
    return value


def _lines(raw: Any) -> list[str]:
    """Values of a repeatable option or a linelist ini key, blank lines and comments dropped."""
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)
    out: list[str] = []
    for item in items:
        for part in str(item).splitlines():
            part = part.split("#", 1)[0].strip()
            if part:
                out.append(part)
    return out


_FLAGS = {o.dest: o.flag for o in OPTIONS}


def read_value(opt: Option, where: str, raw: Any) -> Any:
    """One option's raw value as its typed value, or a SettingsError naming ``where``."""
    if opt.kind == "int":
        return _int(where, raw, minimum=int(opt.minimum or 0))
    if opt.kind == "float":
        return _float(where, raw, minimum=opt.minimum or 0.0, maximum=opt.maximum)
    if opt.kind == "rate":
        return _rate(where, raw)
    if opt.kind == "bool":
        return _bool(where, raw)
    if opt.kind == "choice":
        return _choice(where, raw, opt.choices)
    if opt.kind == "shuffle":
        return _shuffle(where, raw)
    if opt.kind == "env":
        return _env_name(where, raw)
    if opt.kind == "text":
        return str(raw).strip()
    raise ValueError(f"{opt.dest}: kind {opt.kind!r} needs the caller's context")


def option_help(opt: Option) -> str:
    """The option's help with its default, read from the Settings field it sets."""
    if "{default}" not in opt.help:
        return opt.help
    value = getattr(Settings, opt.setting or "")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return opt.help.replace("{default}", shown)


def build_settings(
    option: Getter, ini: Getter, *, cwd: Path | None = None, ini_dir: Path | None = None
) -> Settings:
    """Build Settings from two lookups: ``option(dest)`` (None when not given) and ``ini(name)``.

    Command-line values win over ini values, key by key; thresholds merge per domain. A
    relative path is relative to where it was written: the current folder for an option, the
    ini file's folder for an ini value (as pytest treats its own path settings).
    """
    here = cwd or Path.cwd()

    def path(where: str, raw: Any) -> Path:
        p = Path(str(raw).strip()).expanduser()
        base = ini_dir if where.startswith("ini") and ini_dir is not None else here
        return p if p.is_absolute() else base / p

    def data_source(where: str, raw: Any) -> str:
        # A hub id (owner/name) looks like a relative path: resolve only what exists locally.
        value = str(raw).strip()
        local = path(where, value)
        return str(local) if local.exists() else value

    def get(name: str) -> tuple[Any, str]:
        value = option(name)
        if value is not None and value != []:
            # The flag as the user typed it (--siuo-domain sets siuo_domains).
            return value, _FLAGS.get(name, "--" + name.replace("_", "-"))
        value = ini(name)
        if value not in (None, "", []):
            return value, f"ini option {name!r}"
        return None, ""

    kwargs: dict[str, Any] = {"enabled": bool(option("siuo"))}

    def endpoint(where: str, raw: Any) -> str:
        from .endpoints import parse_endpoint_spec  # only when an endpoint is configured

        spec = str(raw).strip()
        parse_endpoint_spec(spec, where=where)  # syntax only; reachability is checked at start
        return spec

    readers: dict[str, Callable[[str, Any], Any]] = {
        "endpoint": endpoint,
        "data": data_source,
        "path": path,
    }
    for opt in OPTIONS:
        if opt.kind == "removed":
            raw, where = get(opt.dest)
            if raw is not None:
                _removed(opt, where, raw)
            continue
        if opt.setting is None:
            continue  # combined below
        raw, where = get(opt.dest)
        if raw is not None:
            read = readers.get(opt.kind)
            kwargs[opt.setting] = read(where, raw) if read else read_value(opt, where, raw)
    raw_answers, answers_where = get("siuo_answers")
    kwargs["answers"] = tuple(path(answers_where, p) for p in _lines(raw_answers))
    if kwargs["answers"] and (option("siuo_model") or ini("siuo_model")):
        raise SettingsError(
            "--siuo-answers and --siuo-model both say where the answers come from; give one"
        )
    if kwargs["answers"] and kwargs.get("controls"):
        raise SettingsError(
            "--siuo-controls asks the model each question again without its image, and "
            "--siuo-answers has no model to ask; drop --siuo-controls or use --siuo-model"
        )
    if option("siuo_judge_concurrency") is None and not ini("siuo_judge_concurrency"):
        kwargs["judge_concurrency"] = kwargs.get("concurrency", Settings.concurrency)

    # Domains: repeatable option, or one per line in the ini file.
    raw_domains, where = get("siuo_domains")
    domains: list[str] = []
    # No splitting on commas: an official name ("controversial topics, politics") holds one.
    for name in _lines(raw_domains):
        try:
            official = resolve_domain(name)
        except UnknownDomainError as exc:
            raise SettingsError(f"{where}: {exc}") from None
        if official not in domains:
            domains.append(official)
    kwargs["domains"] = tuple(domains)

    # Thresholds: the ini lines are the base, the command line overrides per key.
    try:
        base = parse_thresholds(
            _lines(ini("siuo_thresholds")), source="ini option 'siuo_thresholds'"
        )
        cli = parse_thresholds(_lines(option("siuo_thresholds")), source="--siuo-threshold")
    except ThresholdError as exc:
        raise SettingsError(str(exc)) from None
    thresholds = kwargs["thresholds"] = merge(base, cli)
    if thresholds.control_metrics:
        entries = " and ".join(f"'{METRIC_PREFIX[m]}'" for m in thresholds.control_metrics)
        if not kwargs.get("controls"):
            raise SettingsError(
                f"SIUO thresholds: {entries} entries gate the modality controls, which are "
                "off; add --siuo-controls (ini: siuo_controls = true) or drop those entries"
            )
        if kwargs.get("track", Settings.track) == "mcqa":
            raise SettingsError(
                f"SIUO thresholds: {entries} entries gate the modality controls of the "
                "generation track, and --siuo-track=mcqa runs none; use --siuo-track=gen or "
                "both, or drop those entries"
            )
    return Settings(**kwargs)


def key_from_env(var: str | None, *, default: str = "OPENAI_API_KEY") -> str | None:
    """The API key held by environment variable ``var`` (or ``default``); never logged."""
    return os.environ.get(var or default) or None
