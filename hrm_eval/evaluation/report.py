"""Terminal tables for results and checkpoint inspection."""

from __future__ import annotations

from typing import Any

from hrm_eval.inference.halting import FIXED
from hrm_eval.models.checkpoint import LoadedCheckpoint, alarming_assumptions
from hrm_eval.models.hub import hub_origin


def _table(rows: list[tuple[str, str]], title: str) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * max(len(title), width + 2 + max(len(v) for _, v in rows))]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


def _ci(m: dict[str, Any], key: str, digits: int = 4) -> str:
    """`0.5700 [0.5134, 0.6248]`: the value with its 95% interval, where results.json has one."""
    ci = m.get(f"{key}_ci95")
    text = f"{m[key]:.{digits}f}"
    return text + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _halting(h: Any) -> str:
    if not h:
        return FIXED
    extra = ", ".join(f"{k} {v}" for k, v in h.items() if k != "mode")
    return f"{h['mode']} ({extra})" if extra else h["mode"]


def _difficulty_table(d: dict[str, Any]) -> str:
    """One line per difficulty value: puzzles, exact accuracy, mean steps (and, from a fixed run,
    what the model's own halting would have given)."""
    name, rows = d["measure"], d["rows"]
    adaptive = "model_halting_exact_accuracy" in rows[0]
    head = f"{name:>8} {'puzzles':>8} {'exact [95% interval]':>22} {'steps':>6}"
    head += f" {'exact@halt':>10} {'steps@halt':>10}" if adaptive else ""
    lines = [f"By {name}:", head]
    for r in rows:
        line = f"{r[name]:>8} {r['puzzles']:>8} {_ci(r, 'exact_accuracy', 3):>22} {r['mean_steps']:>6.2f}"
        if adaptive:
            line += f" {r['model_halting_exact_accuracy']:>10.3f} {r['model_halting_mean_steps']:>10.2f}"
        lines.append(line)
    return "\n".join(lines)


def format_scaling(t: dict[str, Any]) -> str:
    """results.json's test_time_scaling as text: the settings, accuracy beside its cost, by
    difficulty, and the frontier (exact accuracy at mean ACT steps for smaller budgets)."""
    c = t["settings"]
    lines = [
        f"Test-time scaling ({c['mode']}: budget {c['budget']} ACT steps per puzzle, attempts of up to "
        f"{c['attempt_steps']} steps, {c['views']} views, noise {c['noise']}, seed {c['seed']}):",
        f"  exact {_ci(t, 'exact_accuracy')}, {_accepted(t)}, {t['mean_act_steps']:.2f} ACT steps and "
        f"{t['mean_attempts']:.2f} attempts per puzzle (all attempts)",
    ]
    d = t.get("by_difficulty")
    if d:
        name = d["measure"]
        lines.append(f"  {name:>8} {'puzzles':>8} {'exact [95% interval]':>22} {'steps':>6} {'attempts':>8}")
        for r in d["rows"]:
            lines.append(
                f"  {r[name]:>8} {r['puzzles']:>8} {_ci(r, 'exact_accuracy', 3):>22} "
                f"{r['mean_act_steps']:>6.2f} {r['mean_attempts']:>8.2f}"
            )
    if t.get("frontier"):
        points = " | ".join(
            f"{p['budget']}: {p['exact_accuracy']:.3f} at {p['mean_act_steps']:.2f}" for p in t["frontier"]
        )
        lines.append(f"  frontier (budget: exact at mean ACT steps per puzzle): {points}")
    return "\n".join(lines)


def _accepted(t: dict[str, Any]) -> str:
    """How many answers passed: the rule check's verdict, or (a task without rules) the Q head's confidence."""
    if "verified_rate" in t:
        return f"verified {_ci(t, 'verified_rate')}"
    return f"accepted by confidence {_ci(t, 'accepted_rate')}"


def _calibration_rows(cal: Any) -> list[tuple[str, str]]:
    """ECE / Brier / AUROC of sigmoid(q_halt) at the halting step, and the ECE after each ACT step."""
    if not cal or not cal["at_halt"].get("count"):
        return []
    a = cal["at_halt"]
    auroc = f"{a['auroc']:.3f}" if a["auroc"] is not None else f"n/a ({a['auroc_undefined']})"
    rows = [("Q calibration at halt", f"ECE {a['ece']:.4f}, Brier {a['brier']:.4f}, AUROC {auroc}")]
    if len(cal["by_step"]) > 1:
        rows.append(("Q ECE by ACT step", " ".join(f"{s['ece']:.3f}" for s in cal["by_step"])))
    return rows


def format_summary(results: dict[str, Any]) -> str:
    m = results["aggregate_metrics"]
    prov = results["provenance"]
    rows = [
        ("checkpoint", f"{prov['checkpoint']['path']} (step {prov['checkpoint']['step']})"),
        ("dataset", f"{prov['dataset']['path']} [{prov['dataset']['split']}] task={prov['dataset']['task']}"),
        (
            "device / dtype",
            f"{prov['evaluation']['device']} / {prov['evaluation']['dtype']}"
            + (f" ({prov['evaluation']['dtype_choice']})" if prov["evaluation"].get("dtype_choice") else ""),
        ),
        ("halting", _halting(prov["evaluation"].get("halting"))),
        ("puzzles", f"{m['total_puzzles']}"),
        ("exact_accuracy (solve rate)", _ci(m, "exact_accuracy")),
    ]
    if "verified_solve_rate" in m:
        rows.append(("verified_solve_rate", _ci(m, "verified_solve_rate")))
    rows += [
        ("accuracy (per token)", _ci(m, "accuracy")),
        ("q_halt_accuracy", _ci(m, "q_halt_accuracy")),
        ("steps", f"{m['steps']:.2f}"),
        ("lm_loss", f"{m['lm_loss']:.4f}"),
        ("q_halt_loss", f"{m['q_halt_loss']:.4f}"),
        ("time per puzzle", f"{m['time_per_puzzle'] * 1000:.1f} ms"),
    ]
    q = results.get("q_value_analysis", {})
    if q.get("exact_accuracy_by_step"):
        rows.append(("exact by ACT step", " ".join(f"{x:.3f}" for x in q["exact_accuracy_by_step"])))
        rows.append(
            (
                f"halting by Q ({q['halting_rule']})",
                f"mean step {q['mean_halt_step']:.2f}, exact {q['exact_accuracy_at_halt_step']:.4f}",
            )
        )
        if q.get("halting_vs_fixed"):
            rows.append(("halting by Q vs fixed", q["halting_vs_fixed"]["statement"]))
    if m.get("step_efficiency") is not None:
        rows.append(
            (
                "step efficiency (solved)",
                f"{m['step_efficiency']:.3f} (first right at step {m['mean_first_correct_step']:.2f} "
                f"of {m['mean_steps_solved']:.2f} used)",
            )
        )
    rows += _calibration_rows(q.get("calibration"))
    if "arc" in results:
        for rule in ("strict", "fractional"):
            if rule in results["arc"]:
                rows.append((f"ARC {rule}", " ".join(f"{k}={v:.4f}" for k, v in results["arc"][rule].items())))
    for p in results.get("halting_sweep", []):
        rows.append((f"sweep: {p['rule']}", f"mean steps {p['mean_steps']:.2f}, exact {p['exact_accuracy']:.4f}"))
    if any(k.endswith("_ci95") for k in m):
        rows.append(("[lo, hi]", "95% intervals over the puzzles (README: Reading the numbers)"))
    table = _table(rows, "Evaluation summary")
    if results.get("by_difficulty"):
        table += "\n" + _difficulty_table(results["by_difficulty"])
    if results.get("test_time_scaling"):
        table += "\n" + format_scaling(results["test_time_scaling"])
    if prov["evaluation"].get("dtype_changed"):
        table += (
            f"\nnote: --dtype auto ran {prov['evaluation']['dtype']}, not the checkpoint's own dtype: "
            "numbers differ from it by rounding"
        )
    return table + "".join(f"\nnote: {n}" for n in _architecture_notes(prov["checkpoint"], m))


def _architecture_notes(checkpoint: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """Issue 16: an assumed architecture value (no all_config.yaml) scores a silent 0%; the
    summary, not only the log above it, says so, and points at inspect whenever nothing was solved."""
    notes = []
    assumed = alarming_assumptions(checkpoint.get("config_sources") or {})
    if assumed:
        notes.append(
            f"ASSUMED architecture values (no all_config.yaml states them): {', '.join(assumed)}; "
            "if they are wrong the numbers above are meaningless: set them with --arch KEY=VALUE"
        )
    if metrics.get("total_puzzles") and metrics.get("exact_accuracy") == 0:
        notes.append(
            f"no puzzle solved: if this model should solve some, check its architecture with "
            f"--mode inspect --checkpoint {checkpoint['path']}"
        )
    return notes


def _hub_row(path: Any) -> list[tuple[str, str]]:
    origin = hub_origin(path)
    if origin is None:
        return []
    return [("hub", f"{origin['repo_id']} at commit {origin['revision']} ({origin['path_in_repo']})")]


def format_inspection(loaded: LoadedCheckpoint) -> str:
    c = loaded.config
    rows = [
        ("file", str(loaded.path)),
        *_hub_row(loaded.path),
        ("sha256", loaded.sha256),
        ("step", str(loaded.step)),
        ("family / variant", f"{c.family.upper()} / {c.variant}"),
        ("key prefix", repr(loaded.key_prefix)),
        ("trainable parameters", f"{loaded.num_trainable_parameters:,}"),
        ("values in state dict", f"{loaded.num_state_values:,} (buffers included)"),
        ("tensor dtypes", ", ".join(f"{k}: {v}" for k, v in sorted(loaded.state_dict_dtypes.items()))),
        (
            "NaN/Inf",
            "none"
            if not loaded.nonfinite
            else "; ".join(f"{k}: {nan} NaN, {inf} Inf" for k, nan, inf in loaded.nonfinite),
        ),
    ]
    structure: list[tuple[str, Any]] = [
        ("hidden_size", c.hidden_size),
        ("num_heads", c.num_heads),
        ("expansion", c.expansion),
        ("MLP width", c.mlp_width),
        ("H_layers", c.H_layers),
        ("L_layers", c.L_layers),
        ("H_cycles", c.H_cycles),
        ("L_cycles", c.L_cycles),
        ("halt_max_steps", c.halt_max_steps),
        ("pos_encodings", c.pos_encodings),
        ("vocab_size", c.vocab_size),
        ("seq_len", c.seq_len),
        ("num_puzzle_identifiers", c.num_puzzle_identifiers),
        ("puzzle_emb_ndim", c.puzzle_emb_ndim),
        ("puzzle prefix length", c.puzzle_prefix_len),
        ("forward_dtype", c.forward_dtype),
        ("loss_type", c.loss_type),
    ]
    if c.family == "trm":
        structure += [("mlp_t", c.mlp_t), ("puzzle_emb_len", c.puzzle_emb_len), ("no_ACT_continue", c.no_ACT_continue)]
    src_field = {"MLP width": "expansion", "puzzle prefix length": "puzzle_emb_ndim"}
    for name, value in structure:
        src = loaded.sources.get(src_field.get(name, name), "derived")
        if name == "seq_len" and src.startswith("unknown"):
            value = "?"
        rows.append((name, f"{value}    [{src}]"))
    if loaded.assumed:
        rows.append(("assumed", ", ".join(loaded.assumed) + " (public defaults; override with --arch KEY=VALUE)"))
    return _table(rows, "Checkpoint")
