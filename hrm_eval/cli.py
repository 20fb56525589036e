"""The command line: `python deploy.py --mode MODE ...` (also installed as `hrm-eval`).

Parse, call one library function, print. User mistakes end with `error: <one line>` and exit
status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from hrm_eval.utils.errors import HRMEvalError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_CONFIG = REPO_ROOT / "configs" / "eval_config.yaml"
MODES = ("evaluate", "inspect", "score", "build-data", "generate", "train", "ensemble", "compare", "test")

log = logging.getLogger("hrm_eval")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, as for every other user mistake
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hrm-eval", description="Evaluate, inspect and score HRM / TRM checkpoints.")
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--config", help="evaluation config YAML (default: configs/eval_config.yaml when present)")
    p.add_argument("--checkpoint", help="step_<N> file, published `checkpoint` file, or run directory (newest step)")
    p.add_argument("--data", help="dataset directory, or a .jsonl / .csv file of puzzles")
    p.add_argument("--split", help="dataset split to evaluate (default test)")
    p.add_argument("--task", help="puzzle task (sudoku, sudoku4, sudoku6, maze, arc); detected when absent")
    p.add_argument("--output", help="output directory")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="override the checkpoint's forward_dtype")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--limit", type=int, help="evaluate only the first N examples")
    p.add_argument("--save-predictions", action="store_true", default=None,
                   help="also write step_<N>_all_preds.0 in the public layout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--model-config", help="architecture YAML for a checkpoint without all_config.yaml")
    p.add_argument("--arch", action="append", default=[], metavar="KEY=VALUE",
                   help="override one architecture field (repeatable), e.g. --arch num_heads=8")
    # score / build-data / generate
    p.add_argument("--predictions", help="score: prefix of PREFIX_all_preds.<rank> files")
    p.add_argument("--source", help="build-data: folder of raw CSVs / ARC JSON, hub name, or arc-agi-1|arc-agi-2")
    p.add_argument("--num-aug", type=int)
    p.add_argument("--subsample-size", type=int)
    p.add_argument("--min-difficulty", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-train", type=int, default=0, help="generate: puzzles in train.csv")
    p.add_argument("--num-test", type=int, default=0, help="generate: puzzles in test.csv")
    p.add_argument("--resume", action="store_true", help="train: continue from the newest step_<N> in the output")
    p.add_argument("--size", type=int, help="generate: board size (sudoku 4/6/9) or maze side")
    p.add_argument("--min-blanks", type=int)
    p.add_argument("--max-blanks", type=int)
    # ensemble / compare
    p.add_argument("--checkpoints", nargs="+", metavar="PATH",
                   help="ensemble/compare: checkpoint files (a run directory means its newest step)")
    p.add_argument("--run", help="ensemble/compare: every step_<N> of this training run directory")
    p.add_argument("--strategy", choices=("average", "vote", "q_vote", "stacking"), default="average",
                   help="ensemble: how members are combined (default average)")
    p.add_argument("--weights", nargs="+", metavar="W",
                   help="ensemble: one weight per checkpoint, or 'uniform' / 'learned' (average default: learned "
                        "from validation accuracy on the calibration split)")
    p.add_argument("--tta", type=int, default=1, metavar="N",
                   help="ensemble: N test-time views per puzzle, the puzzle itself first (sudoku relabelling and "
                        "symmetries, maze dihedral transforms)")
    p.add_argument("--calibration-data", help="ensemble: puzzles to fit stacking / learn weights on (never scored)")
    p.add_argument("--calibration-split", help="ensemble: split of --calibration-data (default: --split)")
    p.add_argument("--calibration-fraction", type=float, default=0.2,
                   help="ensemble: without --calibration-data, this seeded fraction of --data is held out (default 0.2)")
    p.add_argument("--calibration-limit", type=int, help="ensemble: use only the first N calibration puzzles")
    p.add_argument("--stacker", help="ensemble: reuse a fitted stacker.json instead of fitting one")
    p.add_argument("--cache-dir", help="ensemble/compare: member prediction cache, shared by both (default $HRM_EVAL_CACHE_DIR or ~/.cache/hrm-eval/predictions)")
    p.add_argument("--no-plots", action="store_true", help="compare: do not draw the PNG plots")
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="--mode test: arguments after -- go to pytest")
    return p


def parse_arch_overrides(items: List[str]) -> Dict[str, Any]:
    import yaml

    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise HRMEvalError(f"--arch expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


_FLAG_NAMES = {"data_path": "--data", "output_dir": "--output", "model_config_path": "--model-config",
               "arch_overrides": "--arch", "progress": "--no-progress"}


def _check_flags(flags: Dict[str, Any]) -> None:
    """A bad flag value is reported against the flag, not against the config file it is merged into."""
    from pydantic import ValidationError

    from hrm_eval.utils.config import EvalConfig

    try:
        EvalConfig(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        flag = _FLAG_NAMES.get(key, "--" + key.replace("_", "-"))
        raise HRMEvalError(f"{flag} {flags.get(key)!r}: {err['msg']}") from e


def _eval_config(args: argparse.Namespace):
    from hrm_eval.utils.config import EvalConfig, load_config, validate_config

    flags = {
        "checkpoint": args.checkpoint, "data_path": args.data, "split": args.split, "task": args.task,
        "output_dir": args.output, "device": args.device, "dtype": args.dtype, "batch_size": args.batch_size,
        "limit": args.limit, "save_predictions": args.save_predictions, "log_level": args.log_level,
        "model_config_path": args.model_config, "progress": False if args.no_progress else None,
    }
    if args.arch:
        flags["arch_overrides"] = parse_arch_overrides(args.arch)
    _check_flags(flags)
    if args.config:
        cfg = load_config(args.config, EvalConfig, flags)
    elif DEFAULT_EVAL_CONFIG.is_file():
        cfg = load_config(DEFAULT_EVAL_CONFIG, EvalConfig, flags)
    else:
        return validate_config({k: v for k, v in flags.items() if v is not None}, EvalConfig, "command line")
    # Paths written in a config file may be relative to the repository (the bundled model's are).
    for key in ("checkpoint", "data_path", "model_config_path"):
        value = getattr(cfg, key)
        if value and flags.get(key) is None and not Path(value).exists() and (REPO_ROOT / value).exists():
            setattr(cfg, key, str(REPO_ROOT / value))
    return cfg


def _model_config(path: Optional[str]) -> Optional[Dict[str, Any]]:
    if not path:
        return None
    from hrm_eval.models.config import HRMConfig
    from hrm_eval.utils.config import read_yaml

    data = read_yaml(path)
    return HRMConfig.arch_fields_from_all_config(data if "arch" in data else {"arch": data})


# ---- modes ---------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from hrm_eval.evaluation.report import format_summary
    from hrm_eval.evaluation.run import simple_evaluate

    cfg = _eval_config(args)
    logging.getLogger().setLevel(cfg.log_level)
    if not cfg.checkpoint:
        raise HRMEvalError("no checkpoint: give --checkpoint PATH (or set checkpoint in the eval config)")
    if not cfg.data_path:
        raise HRMEvalError("no data: give --data DIR|FILE (or set data_path in the eval config)")
    results = simple_evaluate(
        cfg.checkpoint, cfg.data_path, output_dir=cfg.output_dir, split=cfg.split, task=cfg.task, device=cfg.device,
        dtype=cfg.dtype, batch_size=cfg.batch_size, limit=cfg.limit, save_predictions=cfg.save_predictions,
        arch_overrides=cfg.arch_overrides, model_config=_model_config(cfg.model_config_path), progress=cfg.progress)
    print(format_summary(results))
    print(f"results: {Path(cfg.output_dir) / 'results.json'}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from hrm_eval.evaluation.report import format_inspection
    from hrm_eval.models.loading import load_checkpoint

    if not args.checkpoint:
        raise HRMEvalError("--mode inspect needs --checkpoint PATH")
    overrides = parse_arch_overrides(args.arch)
    loaded = load_checkpoint(args.checkpoint, overrides=overrides, model_config=_model_config(args.model_config),
                             dtype=args.dtype, allow_nonfinite=True, require_seq_len=False)
    print(format_inspection(loaded))
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    extra = [a for a in args.extra if a != "--"]
    return subprocess.call([sys.executable, "-m", "pytest", str(REPO_ROOT / "tests"), *extra], cwd=REPO_ROOT)


def cmd_build_data(args: argparse.Namespace) -> int:
    from hrm_eval.data.build import build_dataset

    if not (args.task and args.source and args.output):
        raise HRMEvalError("--mode build-data needs --task, --source and --output")
    summary = build_dataset(args.task, args.source, args.output, num_aug=args.num_aug, subsample_size=args.subsample_size,
                            min_difficulty=args.min_difficulty, seed=args.seed)
    print(f"built {args.task} dataset in {args.output}: {summary}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from hrm_eval.data.generate import generate_csvs

    if not (args.task and args.output) or args.num_train + args.num_test <= 0:
        raise HRMEvalError("--mode generate needs --task, --output and --num-train and/or --num-test")
    written = generate_csvs(args.task, args.output, num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                            size=args.size, min_blanks=args.min_blanks, max_blanks=args.max_blanks)
    for split, path in written.items():
        print(f"{split}: {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hrm_eval.training.config import TrainConfig
    from hrm_eval.training.trainer import train
    from hrm_eval.utils.config import load_config

    if not args.config:
        raise HRMEvalError("--mode train needs --config configs/<name>.yaml")
    config = load_config(args.config, TrainConfig, {"device": args.device})
    summary = train(config, output=args.output, resume=args.resume, progress=not args.no_progress)
    if summary.final_checkpoint is not None:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.last_metrics.items())
        print(f"trained {summary.steps} steps in {summary.seconds / 60:.1f} min: {metrics}")
        print(f"checkpoint: {summary.final_checkpoint}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from hrm_eval.evaluation.arc_scoring import score_arc_predictions

    if not (args.data and args.predictions and args.output):
        raise HRMEvalError("--mode score needs --data DIR --predictions PREFIX --output DIR")
    scores = score_arc_predictions(args.data, args.predictions, args.output)
    for rule in ("strict", "fractional"):
        print(f"{rule:10s} " + "  ".join(f"{k} {v:.4f}" for k, v in scores[rule].items()))
    print(f"scores: {Path(args.output) / 'arc_scores.json'}\nsubmission: {Path(args.output) / 'submission.json'}")
    return 0


def _parse_weights(items: Optional[List[str]]):
    if not items:
        return None
    if len(items) == 1 and items[0] in ("uniform", "learned"):
        return items[0]
    out = []
    for item in items:
        try:
            out.append(float(item))
        except ValueError:
            raise HRMEvalError(f"--weights: '{item}' is not a number (give numbers, or 'uniform' or 'learned')") from None
    return out


def cmd_ensemble(args: argparse.Namespace) -> int:
    from hrm_eval.ensemble import evaluate_ensemble, format_ensemble

    output = args.output or "outputs/ensemble"
    results = evaluate_ensemble(
        args.checkpoints, args.data, run=args.run, strategy=args.strategy, weights=_parse_weights(args.weights),
        output_dir=output, split=args.split or "test", task=args.task, device=args.device or "auto", dtype=args.dtype,
        batch_size=args.batch_size or 128, limit=args.limit, tta=args.tta, calibration_data=args.calibration_data,
        calibration_split=args.calibration_split, calibration_fraction=args.calibration_fraction,
        calibration_limit=args.calibration_limit, stacker=args.stacker, seed=args.seed, cache_dir=args.cache_dir,
        arch_overrides=parse_arch_overrides(args.arch) or None, model_config=_model_config(args.model_config),
        progress=not args.no_progress)
    print(format_ensemble(results))
    print(f"results: {Path(output) / 'results.json'}")
    if results["strategy"].get("stacker", {}).get("file"):
        print(f"stacker: {results['strategy']['stacker']['file']}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from hrm_eval.evaluation.compare import REPORT_FILE, compare_checkpoints

    output = args.output or "outputs/compare"
    report = compare_checkpoints(
        args.checkpoints, run=args.run, data=args.data, output_dir=output, split=args.split or "test", task=args.task,
        device=args.device or "auto", dtype=args.dtype, batch_size=args.batch_size or 128, limit=args.limit,
        cache_dir=args.cache_dir, plots=not args.no_plots, progress=not args.no_progress)
    for r in report["checkpoints"]:
        m = r.get("metrics")
        measured = f"exact {m['exact_accuracy']:.4f} token {m['accuracy']:.4f}" if m else r["evaluation"]
        print(f"{r['name']:<24} step {str(r['step']):>7}  {measured}" + (f"  [{'; '.join(r['flags'])}]" if r["flags"] else ""))
    rec = report["recommendation"]
    print(f"recommendation: {rec['checkpoint']}: {rec['reason']}" if rec["checkpoint"] else f"recommendation: none ({rec['reason']})")
    print(f"convergence: {report['convergence']['statement']}")
    print(f"report: {Path(output) / REPORT_FILE}")
    return 0


COMMANDS = {"evaluate": cmd_evaluate, "inspect": cmd_inspect, "test": cmd_test, "build-data": cmd_build_data,
            "generate": cmd_generate, "train": cmd_train, "score": cmd_score, "ensemble": cmd_ensemble,
            "compare": cmd_compare}


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level or "INFO"), format="%(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        return COMMANDS[args.mode](args)
    except HRMEvalError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a user mistake: still one line unless --debug
        if args.debug:
            raise
        print(f"error: internal error: {type(e).__name__}: {e} (run again with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
