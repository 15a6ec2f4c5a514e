"""pytest hooks of pytest-siuo: options, collection, fixtures, reporting. Wiring only.

Every box of the data flow lives in its own module (settings, dataset, endpoints, evaluator,
tally, gate, report); this module connects them to pytest's hooks and nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import sys
import time
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .domains import DOMAINS, marker_name
from .errors import (
    AnswersFileError,
    BaselineError,
    CacheError,
    DataError,
    EndpointError,
    SiuoEvaluationError,
)
from .options import OPTIONS
from .progress import ProgressMeter, progress_line, sum_counts
from .records import SAFE
from .selectors import SUITE_NAME, node_id_problem, unknown_marker_problem
from .settings import Settings, SettingsError, build_settings, option_help
from .text import cause_of

if TYPE_CHECKING:
    from .decision import GateCase, RunResult
    from .outcome import Policy
    from .records import CaseRecord
    from .results import SampleResult
    from .state import SiuoState

# The plugin loads on every pytest run of an environment that has it installed: only light
# modules are imported here, the engine (state, evaluator, datasets, openai...) when used.
state_key = pytest.StashKey["SiuoState"]()

#: Errors that mean the run's configuration is wrong: a usage error (exit 4), no traceback.
CONFIG_ERRORS = (
    SettingsError,
    EndpointError,
    DataError,
    CacheError,
    AnswersFileError,
    BaselineError,
)
record_key = pytest.StashKey["CaseRecord"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("siuo", "SIUO cross-modality safety tests (pytest-siuo)")
    group.addoption(
        "--siuo",
        action="store_true",
        dest="siuo",
        default=False,
        help="Add one test per SIUO sample, judged against the model under test",
    )
    for opt in OPTIONS:
        help_text = option_help(opt)
        group.addoption(
            opt.flag, dest=opt.dest, default=None, help=help_text, **opt.argparse_kwargs()
        )
        parser.addini(
            opt.dest,
            opt.ini_help or help_text,
            type=opt.ini_type,
            default=[] if opt.ini_type == "linelist" else None,
        )


# --------------------------------------------------------------------------- configure


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "siuo: a SIUO safety test case (added by pytest-siuo)")
    for domain in DOMAINS:
        config.addinivalue_line("markers", f"{marker_name(domain)}: SIUO domain '{domain}'")
    try:
        settings = build_settings(
            config.getoption,
            config.getini,
            cwd=config.invocation_params.dir,
            ini_dir=config.inipath.parent if config.inipath else None,
        )
    except (SettingsError, EndpointError) as exc:
        raise pytest.UsageError(str(exc)) from None
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        settings = _worker_settings(settings, worker_input)
    if worker_input is None:
        registered = [line.split(":", 1)[0].split("(", 1)[0] for line in config.getini("markers")]
        problem = node_id_problem(config.args, config.rootpath) or unknown_marker_problem(
            getattr(config.option, "markexpr", "") or "", registered
        )
        if problem is not None:
            raise pytest.UsageError(problem)
    from .state import SiuoState

    state = SiuoState(
        settings,
        rootpath=config.rootpath,
        shared=(worker_input or {}).get("siuo"),
        invocation_dir=config.invocation_params.dir,
    )
    config.stash[state_key] = state
    if worker_input is None:
        controller = ControllerPlugin(state, config)
        config.pluginmanager.register(controller, "siuo-controller")
        config.pluginmanager.register(LastFailedPlugin(controller), "siuo-lastfailed")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(state, config), "siuo-xdist")


def _worker_settings(settings: Settings, worker_input: dict[str, Any]) -> Settings:
    """An xdist worker's settings: its share of the whole run's call limits."""
    from .distribution import WorkerShare, share

    ws = WorkerShare.from_json((worker_input.get("siuo") or {}).get("worker"))
    if ws is None:
        return settings
    return dataclasses.replace(
        settings,
        concurrency=share(settings.concurrency, ws.count, ws.index),
        judge_concurrency=share(settings.judge_concurrency, ws.count, ws.index),
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    if state is not None:
        state.close()
        del config.stash[state_key]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail fast, before collection, on a dataset or endpoint that cannot work."""
    state = session.config.stash[state_key]
    if not state.settings.enabled:
        return
    # conftest.py files of the root and the test paths are loaded by now.
    state.fixtures = _conftest_fixtures(session.config)
    if hasattr(session.config, "workerinput"):
        return
    try:
        # Listing the tests (--collect-only) needs the data, not a key for the judge.
        state.prepare(endpoints=not session.config.option.collectonly)
    except CONFIG_ERRORS as exc:
        raise pytest.UsageError(str(exc)) from None


def _conftest_fixtures(config: pytest.Config) -> frozenset[str]:
    """Which of the replaceable fixtures a loaded conftest.py defines."""
    ours = sys.modules[__name__]
    found: set[str] = set()
    for plugin in config.pluginmanager.get_plugins():
        if plugin is ours or not str(getattr(plugin, "__file__", "")).endswith("conftest.py"):
            continue
        found.update(name for name in ("siuo_model", "siuo_judge") if hasattr(plugin, name))
    return frozenset(found)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(state_key, None)
    if state is None or not state.settings.enabled:
        return None
    return state.header_lines()


# --------------------------------------------------------------------------- collection


class SiuoSuite(pytest.Module):
    """The virtual module ``siuo`` that holds the built-in test functions."""

    def _getobj(self) -> Any:
        from . import suite

        return suite

    def istestfunction(self, obj: object, name: str) -> bool:
        return name in self.config.stash[state_key].settings.tracks and callable(obj)

    def istestclass(self, obj: object, name: str) -> bool:
        return False


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    rep = yield
    if isinstance(collector, pytest.Session) and rep.passed:
        state = collector.config.stash[state_key]
        if state.settings.enabled:
            # The suite's path is the root directory itself (it has no file of its own), so
            # conftest.py hooks and fixtures at the root apply to its items as to any test.
            rep.result.append(
                SiuoSuite.from_parent(
                    collector,
                    path=collector.config.rootpath,
                    name=SUITE_NAME,
                    nodeid=SUITE_NAME,
                )
            )
    return rep


#: The fixture that parametrizes a test over the samples of each track.
SAMPLE_FIXTURES = {"gen": "siuo_sample", "mcqa": "siuo_mcqa_sample"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for track, fixture in SAMPLE_FIXTURES.items():
        if fixture not in metafunc.fixturenames:
            continue
        state = metafunc.config.stash[state_key]
        if track not in state.settings.tracks:
            # Not an error: a team's gen tests stay in the suite during an MCQA-only run.
            reason = f"{fixture}: the {track} track is not selected (--siuo-track={track} or both)"
            metafunc.parametrize(
                fixture,
                [pytest.param(None, id=f"no-{track}", marks=pytest.mark.skip(reason=reason))],
                indirect=True,
            )
            continue
        try:
            samples = state.samples(track)
        except DataError as exc:
            raise pytest.UsageError(str(exc)) from None
        params = [
            pytest.param(
                s,
                id=s.case_id,
                marks=[pytest.mark.siuo, getattr(pytest.mark, marker_name(s.domain))],
            )
            for s in samples
        ]
        metafunc.parametrize(fixture, params, indirect=True)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def siuo_settings(pytestconfig: pytest.Config) -> Settings:
    """The validated pytest-siuo settings of this run."""
    return pytestconfig.stash[state_key].settings


@pytest.fixture(scope="session")
def siuo_model(pytestconfig: pytest.Config) -> Any:
    """The model under test. Override it in conftest.py with a callable
    ``(question, image, n) -> list[str]`` (sync or async) or an object with ``generate``."""
    state = pytestconfig.stash[state_key]
    return state.endpoint("model")


@pytest.fixture(scope="session")
def siuo_judge(pytestconfig: pytest.Config) -> Any:
    """The judge model; override it in conftest.py like ``siuo_model``."""
    state = pytestconfig.stash[state_key]
    return state.endpoint("judge")


def _param(request: pytest.FixtureRequest, name: str) -> Any:
    param = getattr(request, "param", None)
    if param is None:
        raise pytest.UsageError(
            f"{name} is parametrized by pytest-siuo; request it from a test function, "
            "not from a fixture with a wider scope"
        )
    return param


@pytest.fixture
def siuo_sample(request: pytest.FixtureRequest) -> Any:
    """The SIUO sample of this test (tests requesting it run once per selected sample)."""
    return _param(request, "siuo_sample")


@pytest.fixture
def siuo_mcqa_sample(request: pytest.FixtureRequest) -> Any:
    """The SIUO multiple-choice sample of this test (needs --siuo-track=mcqa or both)."""
    return _param(request, "siuo_mcqa_sample")


@pytest.fixture(scope="session")
def siuo_policy(pytestconfig: pytest.Config) -> Policy:
    """How an unsafe sample becomes a pytest outcome (fail, or xfail when a gate is set)."""
    return pytestconfig.stash[state_key].policy()


@pytest.fixture
def siuo_result(
    request: pytest.FixtureRequest, siuo_sample: Any, siuo_model: Any, siuo_judge: Any
) -> SampleResult:
    """This sample's evaluation: answers, verdicts, majority outcome. A sample that could not
    be evaluated (endpoint, judge or image error) errors here, so it never counts as a verdict."""
    return _evaluate(request, "gen", siuo_sample, siuo_model, siuo_judge)


@pytest.fixture
def siuo_mcqa_result(
    request: pytest.FixtureRequest, siuo_mcqa_sample: Any, siuo_model: Any
) -> SampleResult:
    """This multiple-choice sample's evaluation (no judge: the chosen letter decides)."""
    return _evaluate(request, "mcqa", siuo_mcqa_sample, siuo_model, None)


def _evaluate(
    request: pytest.FixtureRequest, track: str, sample: Any, model: Any, judge: Any
) -> SampleResult:
    state: SiuoState = request.config.stash[state_key]
    try:
        result = _run_sample(request, state, track, sample, model, judge)
    except SiuoEvaluationError as exc:
        _keep(request.node, _failed_record(state, track, sample, str(exc)))
        raise
    except pytest.exit.Exception:  # an unfit judge ends the run as a usage error
        raise
    except Exception as exc:
        # Whatever broke, the sample ends in the tally as an error with a one-line cause.
        cause = cause_of(exc)
        _keep(request.node, _failed_record(state, track, sample, cause))
        raise SiuoEvaluationError(f"{sample.case_id}: evaluation failed: {cause}") from None
    record = result.to_case()
    _keep(request.node, record)
    if result.outcome == "error":
        message = f"{result.case_id}: {result.error_message}"
        if state.settings.max_errors > 0:
            # Tolerated up to the limit; the gate case siuo::gate[errors] fails the run past it.
            # One line: pytest prints an xfail reason whole on CI; the report keeps the rest.
            head = message.partition("\n")[0]
            pytest.xfail(f"SIUO evaluation error (tolerated by --siuo-max-errors): {head}")
        raise SiuoEvaluationError(message)
    return result


def _run_sample(
    request: pytest.FixtureRequest,
    state: SiuoState,
    track: str,
    sample: Any,
    model: Any,
    judge: Any,
) -> SampleResult:
    try:
        evaluator = state.evaluator(
            state.adapt(model, where="siuo_model fixture"),
            state.adapt(judge, where="siuo_judge fixture") if judge is not None else None,
        )
    except EndpointError as exc:
        raise SiuoEvaluationError(str(exc)) from None
    if track == "gen" and state.settings.judge_check:
        # On the samples this run selected (-k, -m, --siuo-domain), before any verdict counts.
        selected = [smp for t, smp in _upcoming(request.node, ("gen",), everything=True)]
        unfit = state.check_judge_once(evaluator, selected)
        if unfit is not None:
            if not hasattr(request.config, "workerinput"):
                pytest.exit(unfit, returncode=pytest.ExitCode.USAGE_ERROR)
            # pytest.exit on an xdist worker crashes it: error this item and stop the worker.
            request.session.shouldstop = "SIUO judge self-check failed"
            raise SiuoEvaluationError(unfit)
    tracks = ("gen", "mcqa") if judge is not None else ("mcqa",)
    # Without xdist, or on a worker that our scheduler dealt its samples to, the first item
    # hands over every sample this process will run; later items need not walk the list
    # again. Under another --dist mode a worker learns of its tests in batches: look each time.
    dealt = _dealt_items(request.node)
    if not evaluator.started(track, sample) or (
        dealt is None and hasattr(request.config, "workerinput")
    ):
        evaluator.submit(_upcoming(request.node, tracks))
    # Polled at least as often as progress lines are due (at most once a second otherwise).
    every = min(1.0, state.settings.progress or 1.0)
    return evaluator.result(track, sample, on_wait=state.on_wait, every=every)


def _failed_record(state: SiuoState, track: str, sample: Any, cause: str) -> CaseRecord:
    from .records import CaseRecord

    return CaseRecord.failed(
        case_id=sample.case_id,
        track=track,
        domain=sample.domain,
        question_id=sample.question_id,
        question=sample.question,
        error=cause,
        n=state.settings.samples if track == "gen" else 1,
    )


def _keep(item: pytest.Item, record: CaseRecord) -> None:
    """Attach the record to the item: it travels on the item's report to the controller."""
    item.stash[record_key] = record
    v = record.votes
    item.user_properties.extend(
        [
            ("siuo_domain", record.domain),
            ("siuo_question_id", record.question_id),
            ("siuo_verdict", record.outcome),
            (
                "siuo_votes",
                f"safe={v.safe} unsafe={v.unsafe} no_answer={v.no_answer} "
                f"error={v.error}"
                + (f" not_needed={v.not_needed}" if v.not_needed else "")
                + f" of {record.n}",
            ),
            ("siuo_reason", (record.reason or record.error or "")[:500]),
        ]
    )


def check_result(result: SampleResult, policy: Policy) -> None:
    """Raise the pytest outcome of ``result`` under ``policy`` (nothing when it is safe)."""
    from .outcome import FAIL, XFAIL, sample_outcome
    from .records import ERROR

    outcome = sample_outcome(result, policy)
    if outcome.kind == ERROR:
        raise SiuoEvaluationError(outcome.message)
    if outcome.kind == XFAIL:
        pytest.xfail(outcome.message)
    if outcome.kind == FAIL:
        pytest.fail(outcome.message, pytrace=False)


def _upcoming(
    item: pytest.Item, tracks: tuple[str, ...], *, everything: bool = False
) -> Iterator[tuple[str, Any]]:
    """The samples this process will run from ``item`` on, so the pipeline can start them all
    (``everything``: every selected sample of the session, wherever it runs)."""
    items = item.session.items
    dealt = None if everything else _dealt_items(item)
    if dealt is not None:
        yield from _samples_of([item, *dealt], tracks)
        return
    indices: list[int] | None = None
    interactor = None if everything else _xdist_interactor(item.config)
    if interactor is not None:
        try:  # xdist keeps the worker's queue of test indices; read it, never change it
            with interactor.torun.lock() as queued:
                indices = [i for i in queued if isinstance(i, int)]
        except Exception:
            indices = []
    if indices is None:
        try:
            start = 0 if everything else items.index(item)
        except ValueError:
            start = 0
        candidates: Iterator[pytest.Item] = iter(items[start:])
    else:
        candidates = iter([item] + [items[i] for i in indices if i < len(items)])
    yield from _samples_of(candidates, tracks)


def _samples_of(items: Iterable[pytest.Item], tracks: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    for it in items:
        callspec = getattr(it, "callspec", None)
        if callspec is None:
            continue
        for track in tracks:
            sample = callspec.params.get(SAMPLE_FIXTURES[track])
            if sample is not None:
                yield track, sample


dealt_key = pytest.StashKey["list[pytest.Item] | None"]()


def _dealt_items(item: pytest.Item) -> list[pytest.Item] | None:
    """On an xdist worker that the plugin's scheduler serves (``--dist load``): the SIUO tests
    it was dealt, in the order it runs them, computed as the controller did (the same node ids,
    the same samples). None elsewhere."""
    session = item.session
    if dealt_key in session.stash:
        return session.stash[dealt_key]
    from .distribution import WorkerShare, partition

    worker_input = getattr(item.config, "workerinput", None) or {}
    share = WorkerShare.from_json((worker_input.get("siuo") or {}).get("worker"))
    dealt: list[pytest.Item] | None = None
    if share is not None and share.partition:
        state = item.config.stash[state_key]
        case_ids = {s.case_id for s in state.loaded_samples()}
        items = session.items
        parts = partition([it.nodeid for it in items], case_ids, share.count)
        dealt = [items[i] for i in parts[share.index]]
    session.stash[dealt_key] = dealt
    return dealt


def _xdist_interactor(config: pytest.Config) -> Any:
    """xdist's worker loop, whose queue of test indices is read (never changed) under the
    ``--dist`` modes that this plugin does not schedule: the only way such a worker knows what
    it will run next."""
    if not hasattr(config, "workerinput"):
        return None
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__name__ == "WorkerInteractor" and hasattr(plugin, "torun"):
            return plugin
    return None


# --------------------------------------------------------------------------- reports


def _sample_of_item(item: pytest.Item) -> tuple[str, str] | None:
    """``(track, case_id)`` of the sample an item runs (built-in or custom test), else None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for track, fixture in SAMPLE_FIXTURES.items():
        sample = callspec.params.get(fixture)
        if sample is not None and hasattr(sample, "case_id"):
            return track, sample.case_id
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    # Which sample an item runs, on every report of it: a test that ends without a record
    # (a crash, a failing fixture) is still counted as that sample's error.
    sample = _sample_of_item(item)
    if sample is not None:
        item.user_properties.append(("siuo_track", sample[0]))
        item.user_properties.append(("siuo_case_id", sample[1]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, SiuoEvaluationError):
        # One line for the short summary (which pytest prints whole on CI); the user's
        # traceback, when the message carries one, goes in a section of the long report.
        head, _, detail = str(call.excinfo.value).partition("\n")
        rep.longrepr = f"SIUO evaluation error: {head.rstrip(':')}"
        if detail:
            title, _, body = detail.partition("\n")
            if not title.endswith(":"):  # no title line of its own
                title, body = "SIUO evaluation error (details)", detail
            rep.sections.append((title.rstrip(":"), body))
    record = item.stash.get(record_key, None)
    # The record travels on the call report, or on the setup report when the test never ran
    # (an evaluation error, or one tolerated as xfail by --siuo-max-errors).
    if record is not None and (rep.when == "call" or (rep.when == "setup" and not rep.passed)):
        rep.siuo_record = record.to_json()  # type: ignore[attr-defined]  # to the controller
        worker = getattr(item.config, "workerinput", None)
        state = item.config.stash[state_key]
        if worker is not None and state.settings.progress > 0:
            # The worker's progress, for the controller's progress lines.
            counts = state.progress_counts()
            rep.siuo_progress = {"worker": str(worker.get("workerid")), **counts}  # type: ignore[attr-defined]
    return rep


class XdistHooks:
    """Controller-side xdist hooks: hand the prepared dataset and endpoints to each worker,
    give each its share of the call limits, schedule the SIUO tests (``--dist load``), and
    collect what each worker used."""

    def __init__(self, state: SiuoState, config: pytest.Config) -> None:
        self.state = state
        self.config = config
        self._next_share = 0
        self._share_of: dict[str, int] = {}  # worker id -> its share index
        self._freed: list[int] = []  # shares of workers that went down

    def _schedules(self) -> bool:
        """Whether this plugin's scheduler runs the session: under ``--dist load`` (what
        ``-n`` means by default), unless another plugin brings a scheduler of its own."""
        if not self.state.settings.enabled or self.config.getvalue("dist") != "load":
            return False
        impls = self.config.pluginmanager.hook.pytest_xdist_make_scheduler.get_hookimpls()
        return all(
            impl.plugin is self or type(impl.plugin).__module__.startswith("xdist.")
            for impl in impls
        )

    def pytest_configure_node(self, node: Any) -> None:
        if not self.state.settings.enabled:
            return
        from .distribution import WorkerShare

        shared = self.state.shared_for_workers()
        count = int(node.workerinput.get("workercount") or 1)
        if self._freed:
            # A worker replacing a crashed one takes over its share of the limits; the
            # scheduler sends it the crashed worker's tests as --dist load would.
            share = WorkerShare(self._freed.pop(0), count, partition=False)
        else:
            index = self._next_share
            self._next_share += 1
            share = WorkerShare(index % count, count, partition=index < count and self._schedules())
        self._share_of[str(node.gateway.id)] = share.index
        shared["worker"] = share.to_json()
        node.workerinput["siuo"] = shared

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if not self._schedules():
            return None
        from .scheduler import SiuoLoadScheduling

        case_ids = {s.case_id for s in self.state.loaded_samples()}
        return SiuoLoadScheduling(config, log, case_ids=case_ids)

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Every worker collects the same list: the progress lines' total, counted once.
        controller = node.config.pluginmanager.get_plugin("siuo-controller")
        if controller is not None and not controller.total_samples:
            controller.total_samples = len({i for i in ids if _sample_of_nodeid(i) is not None})

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        share = self._share_of.pop(str(node.gateway.id), None)
        if share is not None and error is not None:
            self._freed.append(share)
        # A crashed worker may have sent no output at all.
        output = getattr(node, "workeroutput", {})
        usage = output.get("siuo_usage")
        if usage:
            self.state.worker_usage.append(usage)
        notes = output.get("siuo_endpoint_notes") or []
        self.state.worker_endpoint_notes += [str(n) for n in notes if isinstance(n, str)]
        for role, endpoint_id in (output.get("siuo_endpoints") or {}).items():
            self.state.endpoint_ids.setdefault(str(role), str(endpoint_id))
        if output.get("siuo_judge_check") and self.state.judge_check_summary is None:
            self.state.judge_check_summary = output["siuo_judge_check"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: send this worker's call and token counts to the controller."""
    output = getattr(session.config, "workeroutput", None)
    state = session.config.stash.get(state_key, None)
    if output is not None and state is not None:
        output["siuo_usage"] = state.usage()
        output["siuo_endpoints"] = dict(state.endpoint_ids)
        output["siuo_endpoint_notes"] = state.endpoint_notes()
        output["siuo_judge_check"] = state.judge_check_summary


def _sample_of(report: pytest.TestReport) -> tuple[str, str] | None:
    """``(track, case_id)`` of a SIUO sample's report, from its properties or its node id."""
    props = dict(p for p in report.user_properties if len(p) == 2)
    if "siuo_track" in props and "siuo_case_id" in props:
        return str(props["siuo_track"]), str(props["siuo_case_id"])
    # A report xdist makes for a crashed worker's item carries no properties.
    return _sample_of_nodeid(report.nodeid)


def _sample_of_nodeid(nodeid: str) -> tuple[str, str] | None:
    """``(track, case_id)`` of a built-in sample test's node id (``siuo::gen[self-harm-1]``)."""
    for track in SAMPLE_FIXTURES:
        prefix = f"{SUITE_NAME}::{track}["
        if nodeid.startswith(prefix) and nodeid.endswith("]"):
            return track, nodeid[len(prefix) : -1]
    return None


def _junitxml_key() -> Any:
    """pytest's stash key of its junitxml writer (None if pytest moves it)."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:
        return None
    return xml_key


def _emit(config: pytest.Config, case: GateCase) -> None:
    """Report a gate case as a test of its own, through pytest's reporting hooks: junitxml,
    the terminal, the closing line and the exit status see it as any test."""
    name = case.nodeid.split("::", 1)[1]
    location = ("siuo", None, name)
    hook = config.hook
    hook.pytest_runtest_logstart(nodeid=case.nodeid, location=location)
    for when in ("setup", "call", "teardown"):
        failed = when == "call" and not case.passed
        rep = pytest.TestReport(
            nodeid=case.nodeid,
            location=location,
            keywords={"siuo": 1, "siuo_gate": 1, name: 1},
            outcome="failed" if failed else "passed",
            longrepr=case.message if failed else None,
            when=when,
            user_properties=[("siuo_gate", case.name), ("siuo_gate_message", case.message)]
            if when == "call"
            else [],
        )
        hook.pytest_runtest_logreport(report=rep)
    hook.pytest_runtest_logfinish(nodeid=case.nodeid, location=location)


class ControllerPlugin:
    """Tally, decision, terminal summary and reports: on the controller (or the only process)."""

    def __init__(self, state: SiuoState, config: pytest.Config) -> None:
        self.state = state
        self.config = config
        self.started = _dt.datetime.now(_dt.timezone.utc)
        self.run: RunResult | None = None
        #: Node ids of the samples that were not safe or had no verdict: under a failed gate
        #: they are xfail, which pytest's cache provider does not count as failed (``--lf``).
        self.not_safe_nodeids: list[str] = []
        # Progress lines: this process's counts, plus each xdist worker's latest.
        self.total_samples = 0
        self.worker_progress: dict[str, dict[str, int]] = {}
        self.meter = ProgressMeter(state.settings.progress, time.monotonic())
        state.on_wait = self.progress_tick

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # The progress lines' total: distinct samples (a custom test shares its sample).
        self.total_samples = len({_sample_of_item(item) for item in session.items} - {None})

    def progress_tick(self) -> None:
        """A progress line, when one is due (never under -qq, never in a run without samples)."""
        if not self.total_samples and not len(self.state.tally):
            return
        if not self.meter.due(time.monotonic()) or self.config.get_verbosity() < -1:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        counts = sum_counts([self.state.progress_counts(), *self.worker_progress.values()])
        elapsed = time.monotonic() - self.meter.start
        line = progress_line(counts, self.total_samples, elapsed)
        # While a test waits for its sample, pytest captures the output (fd 1 included): a
        # line written then would land in that test's captured output, shown to nobody.
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            tr.ensure_newline()  # ends a row that names a file; -q's rows name none
            if getattr(getattr(tr, "_tw", None), "width_of_current_line", 0):
                tr.write("\n")  # after this row's progress dots, not on it
            tr.write_line(line)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        progress = getattr(report, "siuo_progress", None)
        if isinstance(progress, dict):
            worker = str(progress.get("worker"))
            self.worker_progress[worker] = {k: v for k, v in progress.items() if k != "worker"}
        self.progress_tick()
        record = getattr(report, "siuo_record", None)
        if isinstance(record, dict):
            self.state.tally.add(record)
            if record.get("outcome") != SAFE:
                self.not_safe_nodeids.append(report.nodeid)
            return
        if report.failed and report.when in ("setup", "call"):
            sample = _sample_of(report)
            if sample is not None and sample[1] not in self.state.tally.case_ids(sample[0]):
                cause = report.longreprtext.strip().splitlines()
                lost = self.state.lost_record(*sample, cause[-1] if cause else "")
                if lost is not None:
                    self.state.tally.add(lost)

    # After the terminal reporter has filed the report.
    @pytest.hookimpl(trylast=True, specname="pytest_runtest_logreport")
    def pytest_runtest_logreport_unfile(self, report: pytest.TestReport) -> None:
        # pytest's failure summary scans every report filed under "" (each test's passed
        # setup and teardown) once per failed test, to print teardown output: quadratic, 61-74 s
        # at 10,000 samples with half unsafe. A sample's quiet setup or teardown has nothing
        # to print there and is counted nowhere, so it is not kept. Only the report just filed
        # (the list's last entry) is taken back, so nothing else in the list moves.
        if report.when == "call" or not report.passed or report.sections:
            return
        if _sample_of_nodeid(report.nodeid) is None:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        filed = getattr(tr, "stats", {}).get("") if tr is not None else None
        if filed and filed[-1] is report:
            filed.pop()

    def _decide(self, *, interrupted: bool) -> RunResult:
        option = self.config.option
        return self.state.decide(
            keyword=getattr(option, "keyword", "") or "",
            markexpr=getattr(option, "markexpr", "") or "",
            last_failed=bool(getattr(option, "lf", False)),
            interrupted=interrupted,
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        if not len(self.state.tally):
            return result
        self.run = self._decide(interrupted=False)
        # After every test (and every xdist worker): the gate's checks become test cases; a
        # failing one counts as a failed test, so the exit status follows the decision.
        # Counted as collected, so the progress line ends at 100%, not past it.
        session.testscollected += len(self.run.cases)
        for case in self.run.cases:
            _emit(self.config, case)
        return result

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        # Shown under -q (CI logs want it), hidden under -qq.
        if self.run is None or self.config.get_verbosity() < -1:
            return
        from .summary import summary_lines

        tr = terminalreporter
        for title, lines in summary_lines(self.run, self.state.tally):
            if title:
                tr.write_sep("=", title)
            for text, markup in lines:
                tr.write_line(text, **markup)
        if self.state.judge_check_lines:
            tr.write_sep("-", "SIUO judge self-check")
            for line in self.state.judge_check_lines:
                tr.write_line(line)
        for line in self.state.footer_lines():
            tr.write_line(line)

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # With samples selected but none finished (Ctrl-C, or -x on an earlier test), the
        # reports say so, instead of leaving the last run's in place looking current.
        if not len(self.state.tally) and (
            not self.total_samples or self.config.option.collectonly
        ):
            return
        if self.run is None:  # stopped before the run loop ended, or before any sample did
            self.run = self._decide(interrupted=True)
        from .outputs import RunOutputs, junit_suite_properties

        # What record_testsuite_property does: junitxml writes them with its file, after us.
        key = _junitxml_key()
        xml = self.config.stash.get(key, None) if key is not None else None
        if xml is not None:
            for name, value in junit_suite_properties(self.run, self.state.tally):
                xml.add_global_property(name, value)
        outputs = RunOutputs(self.state, self.run, started=self.started)
        # The terminal summary runs after this hook, so it can name the files.
        self.state.footer += outputs.write_all(
            int(exitstatus), invocation_dir=self.config.invocation_params.dir
        )


class LastFailedPlugin:
    """Under a failed SIUO verdict, adds the samples that were not safe or had no verdict to
    pytest's ``cache/lastfailed``, so ``--lf`` reruns them (they are xfail, which the cache
    provider does not record). Runs after the cache provider has written its entry."""

    def __init__(self, controller: ControllerPlugin) -> None:
        self.controller = controller

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        run = self.controller.run
        if run is None or run.passed or not self.controller.not_safe_nodeids:
            return
        cache = getattr(session.config, "cache", None)  # None under -p no:cacheprovider
        if cache is None or not session.config.pluginmanager.has_plugin("lfplugin"):
            return
        lastfailed = cache.get("cache/lastfailed", {})
        if not isinstance(lastfailed, dict):
            return
        lastfailed.update(dict.fromkeys(self.controller.not_safe_nodeids, True))
        cache.set("cache/lastfailed", lastfailed)
