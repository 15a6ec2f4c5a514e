"""The command-line options and ini keys of pytest-siuo, as data.

Each entry is ``(dest, flag, help, extra argparse kwargs)``; every option also has an ini key
named like its dest, and a command-line value wins over the ini value (see settings.py).
"""

from __future__ import annotations

from typing import Any

# (dest, flags, help, extra argparse kwargs); every option also has an ini key named like dest.
OPTIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "siuo_model",
        "--siuo-model",
        "Model under test: model name, http://host:port/v1[#model] or python:module:name",
        {"metavar": "ENDPOINT"},
    ),
    (
        "siuo_judge",
        "--siuo-judge",
        "Judge model, same forms as --siuo-model (default: gpt-4o-mini-2024-07-18)",
        {"metavar": "ENDPOINT"},
    ),
    (
        "siuo_model_key_env",
        "--siuo-model-key-env",
        "Name of the environment variable holding the model's API key (default: "
        "OPENAI_API_KEY for model names and OpenAI/Azure URLs, none for other servers)",
        {"metavar": "VAR"},
    ),
    (
        "siuo_judge_key_env",
        "--siuo-judge-key-env",
        "Name of the environment variable holding the judge's API key (default: "
        "OPENAI_API_KEY for model names and OpenAI/Azure URLs, none for other servers)",
        {"metavar": "VAR"},
    ),
    (
        "siuo_data",
        "--siuo-data",
        "Dataset: hub id (default sinwang/SIUO at a pinned revision), "
        "or a local folder (official, parquet or save_to_disk layout)",
        {"metavar": "SOURCE"},
    ),
    (
        "siuo_data_revision",
        "--siuo-data-revision",
        "Hub revision (commit) of the dataset",
        {"metavar": "REV"},
    ),
    (
        "siuo_domains",
        "--siuo-domain",
        "Run only this domain (slug or official name; repeatable)",
        {"action": "append", "metavar": "NAME"},
    ),
    (
        "siuo_samples",
        "--siuo-samples",
        "Answers per sample, combined by majority vote (default: 3)",
        {"metavar": "N"},
    ),
    (
        "siuo_protocol",
        "--siuo-protocol",
        "strict (default) or official: official counts an empty "
        "answer as safe, as the paper's scripts do",
        {"metavar": "NAME"},
    ),
    (
        "siuo_track",
        "--siuo-track",
        "gen (default: judged answers), mcqa (multiple choice, no judge) or both",
        {"metavar": "TRACK"},
    ),
    (
        "siuo_mcqa_shuffle",
        "--siuo-mcqa-shuffle",
        "MCQA option order: off (official order), a "
        "seed (one deterministic permutation per sample) or all (every rotation must pick the safe "
        "option)",
        {"metavar": "SEED|all"},
    ),
    (
        "siuo_thresholds",
        "--siuo-threshold",
        "Gate: minimum safe rate, '0.8' for every domain or 'self-harm=0.95' (repeatable)",
        {"action": "append", "metavar": "[DOMAIN=]RATE"},
    ),
    ("siuo_report", "--siuo-report", "Write the JSON report to this file", {"metavar": "FILE"}),
    (
        "siuo_answers",
        "--siuo-answers",
        "Judge the answers in this file or folder (official results formats: rows with "
        "'responses' or 'response_mcqa', a list or one row per file) instead of calling a model "
        "(repeatable)",
        {"action": "append", "metavar": "FILE"},
    ),
    (
        "siuo_save_answers",
        "--siuo-save-answers",
        "Write the model's answers to this file in the official results format",
        {"metavar": "FILE"},
    ),
    (
        "siuo_max_tokens",
        "--siuo-max-tokens",
        "Token budget of the run: start no new model or judge call once this many tokens "
        "were used (per process)",
        {"metavar": "N"},
    ),
    (
        "siuo_threshold_on",
        "--siuo-threshold-on",
        "Judge thresholds on the point estimate (point, default) or on the 95%% Wilson "
        "interval (interval)",
        {"metavar": "point|interval"},
    ),
    (
        "siuo_inconclusive",
        "--siuo-inconclusive",
        "With --siuo-threshold-on=interval: what a domain whose interval straddles its "
        "threshold means for the exit status (pass, default, or fail)",
        {"metavar": "pass|fail"},
    ),
    (
        "siuo_baseline",
        "--siuo-baseline",
        "Compare with an earlier JSON report: a domain fails when its safe rate dropped by more "
        "than --siuo-max-drop with an exact paired test significant at --siuo-alpha",
        {"metavar": "FILE"},
    ),
    (
        "siuo_save_baseline",
        "--siuo-save-baseline",
        "Write this run's report as the next baseline",
        {"metavar": "FILE"},
    ),
    (
        "siuo_max_drop",
        "--siuo-max-drop",
        "Largest tolerated drop of a domain's safe rate against the baseline (default: 0)",
        {"metavar": "RATE"},
    ),
    (
        "siuo_alpha",
        "--siuo-alpha",
        "Significance level of the baseline's paired test (default: 0.05)",
        {"metavar": "ALPHA"},
    ),
    (
        "siuo_strict_regressions",
        "--siuo-strict-regressions",
        "Fail the test of every sample that was safe in the baseline and is not now (default: "
        "such samples are xfail and the per-domain test decides the run)",
        {"action": "store_true"},
    ),
    (
        "siuo_markdown",
        "--siuo-markdown",
        "Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)",
        {"metavar": "FILE"},
    ),
    (
        "siuo_html",
        "--siuo-html",
        "Write a self-contained HTML report with a per-domain chart and every sample",
        {"metavar": "FILE"},
    ),
    (
        "siuo_judge_check",
        "--siuo-judge-check",
        "Before the run, check the judge on each sample's reference answer and on known-unsafe "
        "canary answers; stop when it is unfit",
        {"action": "store_true"},
    ),
    (
        "siuo_judge_min_agreement",
        "--siuo-judge-min-agreement",
        "Least per-domain agreement of the judge self-check (default: 0.9)",
        {"metavar": "RATE"},
    ),
    (
        "siuo_max_errors",
        "--siuo-max-errors",
        "Samples that may end without a verdict (endpoint, judge or image errors) before the "
        "run fails; with N > 0 they are reported as xfail (default: 0, each is a test error)",
        {"metavar": "N"},
    ),
    (
        "siuo_concurrency",
        "--siuo-concurrency",
        "Model calls in flight at most (default: 16)",
        {"metavar": "N"},
    ),
    (
        "siuo_judge_concurrency",
        "--siuo-judge-concurrency",
        "Judge calls in flight at most (default: as --siuo-concurrency)",
        {"metavar": "N"},
    ),
    (
        "siuo_timeout",
        "--siuo-timeout",
        "Seconds before one call times out (default: 120)",
        {"metavar": "SECONDS"},
    ),
    (
        "siuo_retries",
        "--siuo-retries",
        "Retries of a failed call: 429, 5xx, timeouts, dropped connections (default: 4)",
        {"metavar": "N"},
    ),
    (
        "siuo_retry_backoff",
        "--siuo-retry-backoff",
        "Base delay in seconds of the exponential backoff between retries (default: 0.5)",
        {"metavar": "SECONDS"},
    ),
    (
        "siuo_cache",
        "--siuo-cache",
        "on (default), off, refresh (ignore cached entries, write new "
        "ones) or replay (never call a model or judge)",
        {"metavar": "MODE"},
    ),
    (
        "siuo_cache_dir",
        "--siuo-cache-dir",
        "Cache folder (default: .siuo/cache under the root directory)",
        {"metavar": "DIR"},
    ),
    (
        "siuo_max_answer_tokens",
        "--siuo-max-answer-tokens",
        "max_tokens of each model answer (default: 500, as the official protocol)",
        {"metavar": "N"},
    ),
    (
        "siuo_temperature",
        "--siuo-temperature",
        "Sampling temperature of the model (default: the server's)",
        {"metavar": "T"},
    ),
]

INI_HELP = {
    "siuo_domains": "SIUO domains to run, one per line",
    "siuo_thresholds": "SIUO gate thresholds, one 'domain = rate' per line ('default = rate')",
}
