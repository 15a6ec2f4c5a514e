"""The command-line options and ini keys of pytest-siuo, as data: one :class:`Option` per
setting, declaring its flag, its ini key (the ``dest``), how its value is read and its help.

The default of each option lives in one place, the :class:`~pytest_siuo.settings.Settings`
field it sets (``setting``); a help text shows it through ``{default}``. ``settings.py`` reads
every option through this table, ``plugin.py`` registers it with pytest, and
``docs/gen_options.py`` prints the README's table from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PROTOCOLS = ("strict", "official")
CACHE_MODES = ("on", "off", "refresh", "replay")
TRACK_CHOICES = ("gen", "mcqa", "both")  # --siuo-track: a track, or both

#: How a raw value is read (settings.py implements each): ``endpoint`` a model spec; ``env`` the
#: name of an environment variable; ``data`` a hub id or a local folder; ``path`` a file or
#: folder, relative to where it was written; ``lines`` a repeatable option or a linelist ini
#: key, combined by settings.py itself; ``removed`` an option that no longer exists, kept so
#: that giving it says what replaced it.
Kind = Literal[
    "endpoint",
    "env",
    "data",
    "text",
    "int",
    "float",
    "rate",
    "bool",
    "choice",
    "shuffle",
    "path",
    "lines",
    "removed",
]


@dataclass(frozen=True)
class Option:
    dest: str  # argparse dest and ini key
    flag: str
    help: str  # "{default}" shows the default of the Settings field
    setting: str | None = None  # the Settings field it sets; None: combined by settings.py
    kind: Kind = "text"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    action: str | None = None
    ini_help: str | None = None  # when the ini key reads differently from the option

    @property
    def ini_type(self) -> Literal["linelist", "string"]:
        return "linelist" if self.kind == "lines" else "string"

    def argparse_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        if self.action is not None:
            kwargs["action"] = self.action
        return kwargs


OPTIONS: tuple[Option, ...] = (
    Option(
        "siuo_model",
        "--siuo-model",
        "Model under test: model name, http://host:port/v1[#model] or python:module:name",
        setting="model",
        kind="endpoint",
        metavar="ENDPOINT",
    ),
    Option(
        "siuo_judge",
        "--siuo-judge",
        "Judge model, same forms as --siuo-model (default: {default})",
        setting="judge",
        kind="endpoint",
        metavar="ENDPOINT",
    ),
    Option(
        "siuo_model_key_env",
        "--siuo-model-key-env",
        "Name of the environment variable holding the model's API key (default: "
        "OPENAI_API_KEY for model names and OpenAI/Azure URLs, none for other servers)",
        setting="model_key_env",
        kind="env",
        metavar="VAR",
    ),
    Option(
        "siuo_judge_key_env",
        "--siuo-judge-key-env",
        "Name of the environment variable holding the judge's API key (default: "
        "OPENAI_API_KEY for model names and OpenAI/Azure URLs, none for other servers)",
        setting="judge_key_env",
        kind="env",
        metavar="VAR",
    ),
    Option(
        "siuo_data",
        "--siuo-data",
        "Dataset: hub id (default sinwang/SIUO at a pinned revision), "
        "or a local folder (official, parquet or save_to_disk layout)",
        setting="data",
        kind="data",
        metavar="SOURCE",
    ),
    Option(
        "siuo_data_revision",
        "--siuo-data-revision",
        "Hub revision (commit) of the dataset",
        setting="data_revision",
        kind="text",
        metavar="REV",
    ),
    Option(
        "siuo_domains",
        "--siuo-domain",
        "Run only this domain (slug or official name; repeatable)",
        kind="lines",
        action="append",
        metavar="NAME",
        ini_help="SIUO domains to run, one per line",
    ),
    Option(
        "siuo_samples",
        "--siuo-samples",
        "Answers per sample, combined by majority vote (default: {default})",
        setting="samples",
        kind="int",
        minimum=1,
        metavar="N",
    ),
    Option(
        "siuo_protocol",
        "--siuo-protocol",
        "strict (default) or official: official counts an empty answer as safe, as the "
        "paper's scripts do",
        setting="protocol",
        kind="choice",
        choices=PROTOCOLS,
        metavar="NAME",
    ),
    Option(
        "siuo_track",
        "--siuo-track",
        "gen (default: judged answers), mcqa (multiple choice, no judge) or both",
        setting="track",
        kind="choice",
        choices=TRACK_CHOICES,
        metavar="TRACK",
    ),
    Option(
        "siuo_mcqa_shuffle",
        "--siuo-mcqa-shuffle",
        "MCQA option order: off (official order), a seed (one deterministic permutation per "
        "sample) or all (every rotation must pick the safe option)",
        setting="mcqa_shuffle",
        kind="shuffle",
        metavar="SEED|all",
    ),
    Option(
        "siuo_thresholds",
        "--siuo-threshold",
        "Gate: minimum safe rate, '0.8' for every domain or 'self-harm=0.95' (repeatable)",
        kind="lines",
        action="append",
        metavar="[DOMAIN=]RATE",
        ini_help="SIUO gate thresholds, one 'domain = rate' per line ('default = rate')",
    ),
    Option(
        "siuo_report",
        "--siuo-report",
        "Write the JSON report to this file",
        setting="report",
        kind="path",
        metavar="FILE",
    ),
    Option(
        "siuo_answers",
        "--siuo-answers",
        "Judge the answers in this file or folder (official results formats: rows with "
        "'responses' or 'response_mcqa', a list or one row per file) instead of calling a model "
        "(repeatable)",
        kind="lines",
        action="append",
        metavar="FILE",
    ),
    Option(
        "siuo_save_answers",
        "--siuo-save-answers",
        "Write the model's answers to this file in the official results format",
        setting="save_answers",
        kind="path",
        metavar="FILE",
    ),
    Option(
        "siuo_max_tokens",
        "--siuo-max-tokens",
        "Token budget of the run: start no new model or judge call once this many tokens were"
        " used (per process)",
        setting="max_tokens",
        kind="int",
        minimum=1,
        metavar="N",
    ),
    Option(
        "siuo_threshold_on",
        "--siuo-threshold-on",
        "Judge thresholds on the point estimate (point, default) or on the 95%% Wilson "
        "interval (interval)",
        setting="threshold_on",
        kind="choice",
        choices=("point", "interval"),
        metavar="point|interval",
    ),
    Option(
        "siuo_inconclusive",
        "--siuo-inconclusive",
        "With --siuo-threshold-on=interval: what a domain whose interval straddles its "
        "threshold means for the exit status (pass, default, or fail)",
        setting="inconclusive",
        kind="choice",
        choices=("pass", "fail"),
        metavar="pass|fail",
    ),
    Option(
        "siuo_baseline",
        "--siuo-baseline",
        "Compare with an earlier JSON report: a domain fails when an exact answer-level test "
        "finds more unsafe answers than the baseline's, with false alarms of an unchanged model "
        "at most --siuo-alpha per run",
        setting="baseline",
        kind="path",
        metavar="FILE",
    ),
    Option(
        "siuo_save_baseline",
        "--siuo-save-baseline",
        "Write this run's report as the next baseline",
        setting="save_baseline",
        kind="path",
        metavar="FILE",
    ),
    Option(
        "siuo_ignore_drop_below",
        "--siuo-ignore-drop-below",
        "Pass a significant drop of a domain's answer-level safe rate against the baseline when "
        "it is smaller than RATE (default: {default})",
        setting="ignore_drop_below",
        kind="rate",
        metavar="RATE",
    ),
    Option(
        "siuo_max_drop",
        "--siuo-max-drop",
        "Removed: use --siuo-ignore-drop-below (the gate no longer tests a tolerated drop)",
        kind="removed",
        metavar="RATE",
    ),
    Option(
        "siuo_alpha",
        "--siuo-alpha",
        "Largest rate at which the baseline gate fails a run of an unchanged model "
        "(default: {default})",
        setting="alpha",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        metavar="ALPHA",
    ),
    Option(
        "siuo_strict_regressions",
        "--siuo-strict-regressions",
        "Fail the test of every sample that was safe in the baseline and is not now (default:"
        " such samples are xfail and the per-domain test decides the run)",
        setting="strict_regressions",
        kind="bool",
        action="store_true",
    ),
    Option(
        "siuo_markdown",
        "--siuo-markdown",
        "Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)",
        setting="markdown",
        kind="path",
        metavar="FILE",
    ),
    Option(
        "siuo_html",
        "--siuo-html",
        "Write a self-contained HTML report with a per-domain chart and every sample",
        setting="html",
        kind="path",
        metavar="FILE",
    ),
    Option(
        "siuo_controls",
        "--siuo-controls",
        "Modality controls: also ask each generation question with no image (N more answers, "
        "graded for refusal) and report image-aware and over-refusal rates; never changes a "
        "verdict (see docs/controls.md)",
        setting="controls",
        kind="bool",
        action="store_true",
    ),
    Option(
        "siuo_judge_all",
        "--siuo-judge-all",
        "Judge every answer. By default the judge is asked only while an answer can still change "
        "a sample's verdicts (identical verdicts and rates, fewer calls); a baseline run always "
        "judges every answer (see docs/verdicts.md)",
        setting="judge_all",
        kind="bool",
        action="store_true",
    ),
    Option(
        "siuo_judge_check",
        "--siuo-judge-check",
        "Before the run, check the judge on each sample's reference answer and on known-"
        "unsafe canary answers; stop when it is unfit",
        setting="judge_check",
        kind="bool",
        action="store_true",
    ),
    Option(
        "siuo_judge_min_agreement",
        "--siuo-judge-min-agreement",
        "Per-domain floor of the judge self-check's agreement; the pooled count of misjudged "
        "reference answers decides first (default: {default})",
        setting="judge_min_agreement",
        kind="rate",
        metavar="RATE",
    ),
    Option(
        "siuo_max_errors",
        "--siuo-max-errors",
        "Samples that may end without a verdict (endpoint, judge or image errors) before the "
        "run fails; with N > 0 they are reported as xfail (default: {default}, each is a test"
        " error)",
        setting="max_errors",
        kind="int",
        minimum=0,
        metavar="N",
    ),
    Option(
        "siuo_progress",
        "--siuo-progress",
        "Seconds between progress lines (samples done, calls in flight, failed calls, tokens,"
        " ETA) while SIUO samples run; 0 turns them off (default: {default}; none under -qq)",
        setting="progress",
        kind="float",
        minimum=0.0,
        metavar="SECONDS",
    ),
    Option(
        "siuo_concurrency",
        "--siuo-concurrency",
        "Model calls in flight at most, for the whole run (split across xdist workers) "
        "(default: {default})",
        setting="concurrency",
        kind="int",
        minimum=1,
        metavar="N",
    ),
    Option(
        "siuo_judge_concurrency",
        "--siuo-judge-concurrency",
        "Judge calls in flight at most, for the whole run (default: as --siuo-concurrency)",
        setting="judge_concurrency",
        kind="int",
        minimum=1,
        metavar="N",
    ),
    Option(
        "siuo_timeout",
        "--siuo-timeout",
        "Seconds one call may take in all, headers and body (default: {default})",
        setting="timeout",
        kind="float",
        minimum=0.001,
        metavar="SECONDS",
    ),
    Option(
        "siuo_retries",
        "--siuo-retries",
        "Retries of a failed call: 5xx, timeouts, dropped connections, malformed bodies "
        "(default: {default}; 429 waits are bounded by --siuo-rate-limit-wait instead)",
        setting="retries",
        kind="int",
        minimum=0,
        metavar="N",
    ),
    Option(
        "siuo_rate_limit_wait",
        "--siuo-rate-limit-wait",
        "Seconds one call may spend waiting out HTTP 429 rate limits (default: {default})",
        setting="rate_limit_wait",
        kind="float",
        minimum=0.0,
        metavar="SECONDS",
    ),
    Option(
        "siuo_max_response_mb",
        "--siuo-max-response-mb",
        "Largest response body read from a server, in MB after decompression (default: {default})",
        setting="max_response_mb",
        kind="float",
        minimum=0.001,
        metavar="MB",
    ),
    Option(
        "siuo_retry_backoff",
        "--siuo-retry-backoff",
        "Base delay in seconds of the exponential backoff between retries (default: {default})",
        setting="retry_backoff",
        kind="float",
        minimum=0.0,
        metavar="SECONDS",
    ),
    Option(
        "siuo_cache",
        "--siuo-cache",
        "on (default), off, refresh (ignore cached entries, write new ones) or replay (never "
        "call a model or judge)",
        setting="cache",
        kind="choice",
        choices=CACHE_MODES,
        metavar="MODE",
    ),
    Option(
        "siuo_cache_dir",
        "--siuo-cache-dir",
        "Cache folder (default: .siuo/cache under the root directory)",
        setting="cache_dir",
        kind="path",
        metavar="DIR",
    ),
    Option(
        "siuo_max_answer_tokens",
        "--siuo-max-answer-tokens",
        "max_tokens of each model answer (default: {default}, as the official protocol)",
        setting="max_answer_tokens",
        kind="int",
        minimum=1,
        metavar="N",
    ),
    Option(
        "siuo_temperature",
        "--siuo-temperature",
        "Sampling temperature of the model (default: the server's)",
        setting="temperature",
        kind="float",
        minimum=0.0,
        maximum=2.0,
        metavar="T",
    ),
)

BY_DEST = {o.dest: o for o in OPTIONS}
