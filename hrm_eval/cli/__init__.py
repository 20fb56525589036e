"""The command line: `python deploy.py --mode MODE ...` (also installed as `hrm-eval`).

Each mode has its own parser (`--mode MODE --help` shows its flags only) and its own config
model; the modules here parse, call one library function and print. User mistakes end with
`error: <one line>` and exit status 2; `--debug` shows the traceback instead.

    base.py      the mode table entry, flag groups, flags + config file -> config model
    <mode>.py    one module per mode, named after it (evaluate.py, compare.py, ...);
                 data.py holds the two data modes, build-data and generate
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path

from hrm_eval.cli.base import Invocation, Mode, Parser, flag_names, mode_parser
from hrm_eval.cli.compare import COMPARE
from hrm_eval.cli.data import BUILD_DATA, GENERATE
from hrm_eval.cli.ensemble import ENSEMBLE
from hrm_eval.cli.evaluate import EVALUATE
from hrm_eval.cli.export import EXPORT
from hrm_eval.cli.inspect import INSPECT
from hrm_eval.cli.play import PLAY
from hrm_eval.cli.score import SCORE
from hrm_eval.cli.serve import SERVE
from hrm_eval.cli.solve import SOLVE
from hrm_eval.cli.train import TRAIN
from hrm_eval.resources import data_home
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import disk_error_line


def run_tests(inv: Invocation) -> int:
    tests = data_home() / "tests"
    if not tests.is_dir():
        raise HRMEvalError(f"--mode test: no tests in {data_home()} (they come with a source checkout)")
    extra = [a for a in inv.flags.get("extra", []) if a != "--"]
    return subprocess.call([sys.executable, "-m", "pytest", str(tests), *extra], cwd=data_home())


def _test_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("extra", nargs=argparse.REMAINDER, help="arguments after -- go to pytest")


log = logging.getLogger("hrm_eval")
TEST = Mode(
    "test",
    "Run the test suite of a source checkout (arguments after -- go to pytest).",
    run_tests,
    flags=_test_arguments,
)
MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        EVALUATE,
        INSPECT,
        SCORE,
        SOLVE,
        BUILD_DATA,
        GENERATE,
        TRAIN,
        ENSEMBLE,
        COMPARE,
        SERVE,
        EXPORT,
        PLAY,
        TEST,
    )
}


def top_parser() -> Parser:
    """Only --mode: it picks the parser that reads everything else."""
    modes = "\n".join(f"  {m.name:<11} {m.help}" for m in MODES.values())
    p = Parser(
        prog="hrm-eval",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate, inspect, compare, ensemble and train HRM / TRM checkpoints.",
        epilog=f"modes:\n{modes}\n\n`hrm-eval --mode MODE --help` shows the flags of one mode.",
    )
    p.add_argument("--mode", choices=list(MODES), help="what to do (see below)")
    p.add_argument("-h", "--help", action="store_true", help="show this message")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def parse(argv: list[str]) -> tuple[Mode, Invocation]:
    top = top_parser()
    known, _ = top.parse_known_args(argv)
    if known.mode is None:
        if known.help:
            top.print_help()
            raise SystemExit(0)
        top.error(f"--mode is required (one of: {', '.join(MODES)})")
    mode = MODES[known.mode]
    parser = mode_parser(mode)
    flags = vars(parser.parse_args(argv))
    config = flags.get("config")
    return mode, Invocation(flags, flag_names(parser), Path(config) if config else None)


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that `with` blocks (the --output lock, temp
    files) are left the way they are on an error: a scheduler's kill leaves no lock behind."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    mode, inv = parse(argv)
    debug = inv.flags.get("debug", False)
    package_logger = logging.getLogger("hrm_eval")
    propagates = package_logger.propagate  # setup_logging stops it; a caller in-process gets it back
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        inv.start_logging()  # from the flags; the mode's config file may change it when read
        return mode.run(inv)
    except Terminated:
        _say("terminated (SIGTERM)")
        return 128 + signal.SIGTERM
    except HRMEvalError as e:
        if debug:
            raise
        _say(f"error: {e}")
        log.error("error: %s", e, extra={"event": "error", "console": False})  # the log file keeps it too
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except OSError as e:  # a full disk where no writer said more (a streamed log, a spool file)
        line = disk_error_line(e, e.filename, "files already complete were kept")
        if line is None or debug:
            return _internal_error(e, debug)
        _say(f"error: {line}")
        return 2
    except Exception as e:  # noqa: BLE001 - a bug, not a user mistake: still one line unless --debug
        return _internal_error(e, debug)
    finally:
        package_logger.propagate = propagates
        if previous is not None:  # a caller's own handler (main() called in-process) is theirs again
            signal.signal(signal.SIGTERM, previous)


def _say(line: str) -> None:
    """One line to stderr in one write. print() writes the text and its newline separately, and
    under torchrun every rank shares one stderr: another rank's log line could land in between
    (unbuffered stderr, PYTHONUNBUFFERED=1, makes each write reach the pipe at once)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _internal_error(e: Exception, debug: bool) -> int:
    if debug:
        raise e
    _say(f"error: internal error: {type(e).__name__}: {e} (run again with --debug for the traceback)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
