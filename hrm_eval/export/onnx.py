"""One ACT step as an ONNX graph.

    inputs:  z_H, z_L [B, S, h] fp32   the carry (anything for rows that start: reset replaces it)
             inputs [B, L] int64, puzzle_identifiers [B] int64
             reset [B] bool            rows that start a new puzzle: carry := H_init / L_init
    outputs: z_H_out, z_L_out [B, S, h]  the next carry
             logits [B, L, V], q_halt_logits [B], q_continue_logits [B]

The batch axis is dynamic; S, L, h and V are fixed by the model (RoPE tables are built for S).
The ACT loop around the step (when to stop, which rows to replace) stays outside the graph:
`hrm_eval.inference.onnx_runner` runs it with the engine's HaltingPolicy. The graph computes
in float32 (a bf16 checkpoint is exported in fp32). Initializers carry the public key names
(`L_level.layers.0.mlp.down_proj.weight`, ...; linear weights stored transposed, [in, out],
as MatMul takes them), and the architecture is stored in the model's
metadata (`hrm_eval_config`), so a `.onnx` file describes itself.

Exporter: torch.export-based (`dynamo=True`). The TorchScript exporter (`dynamo=False`) is
deprecated, renames weights (`onnx::MatMul_1906`) and gives a graph twice as large.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrm_eval.models.base import InnerCarry, RecursiveReasoningModel
from hrm_eval.models.checkpoint import CONFIG_METADATA_KEY, LoadedCheckpoint
from hrm_eval.models.config import ModelConfig
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write, sha256_file
from hrm_eval.utils.validation import validation_error_line

log = logging.getLogger("hrm_eval")
STEP_INPUTS = ("z_H", "z_L", "inputs", "puzzle_identifiers", "reset")
STEP_OUTPUTS = ("z_H_out", "z_L_out", "logits", "q_halt_logits", "q_continue_logits")
ONNX_SUFFIX = ".onnx"
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"


class ACTStep(nn.Module):
    """One ACT step as a pure function of tensors: what the ONNX graph computes."""

    def __init__(self, inner: RecursiveReasoningModel):
        super().__init__()
        self.inner = inner

    def forward(
        self,
        z_H: torch.Tensor,
        z_L: torch.Tensor,
        inputs: torch.Tensor,
        puzzle_identifiers: torch.Tensor,
        reset: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        carry = self.inner.reset_carry(reset, InnerCarry(z_H, z_L))
        x = self.inner.input_embeddings(inputs, puzzle_identifiers)  # [B, S, h]
        carry, logits, q_halt, q_continue = self.inner.step(carry, x, self.inner.cos_sin())
        return carry.z_H, carry.z_L, logits, q_halt, q_continue


def example_inputs(config: ModelConfig, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes and dtypes (batch 2: torch.export specialises a batch of 1)."""
    carry = (batch, config.full_seq_len, config.hidden_size)
    return (
        torch.zeros(carry),
        torch.zeros(carry),
        torch.zeros(batch, config.seq_len, dtype=torch.int64),
        torch.zeros(batch, dtype=torch.int64),
        torch.ones(batch, dtype=torch.bool),
    )


def onnx_metadata(loaded: LoadedCheckpoint) -> dict[str, str]:
    return {
        CONFIG_METADATA_KEY: json.dumps(loaded.config.model_copy(update={"forward_dtype": "float32"}).model_dump()),
        "family": loaded.config.family,
        "variant": loaded.config.variant,
        "training_step": "" if loaded.step is None else str(loaded.step),
        "source_sha256": loaded.sha256,
        "quantization": "none",
    }


def export_onnx(loaded: LoadedCheckpoint, path: str | Path) -> Path:
    """Write one ACT step of `loaded` (which must compute in float32) as an ONNX file."""
    if loaded.config.forward_dtype != "float32":
        raise HRMEvalError(f"ONNX export computes in float32; load {loaded.path} with dtype float32")
    proto = step_proto(loaded.model.inner)
    rename_initializers(proto, prefix="inner.")
    fold_weight_transposes(proto)
    for node in proto.graph.node:  # the exporter's per-node stack traces: ~16% of the file, no use at run time
        del node.metadata_props[:]
        node.doc_string = ""
    set_metadata(proto, onnx_metadata(loaded))
    return save_proto(proto, path)


def step_proto(inner: RecursiveReasoningModel) -> Any:
    """The ONNX ModelProto of one ACT step of `inner`, dynamic in the batch axis."""
    step = ACTStep(inner).eval()
    batch = torch.export.Dim("batch", min=1)
    with quiet_logs(), torch.no_grad():
        program = torch.onnx.export(
            step,
            example_inputs(inner.config),
            dynamo=True,
            input_names=list(STEP_INPUTS),
            output_names=list(STEP_OUTPUTS),
            dynamic_shapes=tuple({0: batch} for _ in STEP_INPUTS),
            optimize=True,
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    return program.model_proto


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Errors only while exporting or quantizing: the exporter and its optimizer log every
    rewrite at INFO and warn about optional torchvision ops; onnxruntime's quantizer advises a
    pre-processing step the exported graph does not need. None of it is for the user."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx"), logging.getLogger("onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_Discard()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _Discard:
    """A stdout that drops the exporter's progress lines (`[torch.onnx] ...`)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def rename_initializers(proto: Any, prefix: str) -> None:
    """Drop `prefix` from initializer names (and their uses): the weights keep their public names."""
    renamed = {i.name: i.name[len(prefix) :] for i in proto.graph.initializer if i.name.startswith(prefix)}
    for init in proto.graph.initializer:
        init.name = renamed.get(init.name, init.name)
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    for value in list(proto.graph.input) + list(proto.graph.value_info):
        value.name = renamed.get(value.name, value.name)


def fold_weight_transposes(proto: Any) -> None:
    """Store each linear weight as MatMul takes it ([in, out]) instead of transposing it at every
    use (76 Transposes a step for the bundled HRM; the exporter leaves them because each weight is
    used by several unrolled cycles). The initializer keeps its public name. onnxruntime's int8
    quantization also needs this: it quantizes only MatMuls whose weight is an initializer."""
    from onnx import numpy_helper

    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def is_matrix_transpose(node: Any) -> bool:
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        return node.op_type == "Transpose" and perm == [1, 0]

    folded = []
    for name, init in inits.items():
        users = consumers.get(name, [])
        if len(init.dims) != 2 or not users or not all(is_matrix_transpose(n) for n in users):
            continue
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).T.copy(), name))
        for t in users:
            for node in consumers.get(t.output[0], []):
                node.input[:] = [name if i == t.output[0] else i for i in node.input]
            folded.append(t)
    for t in folded:
        graph.node.remove(t)
    # recorded shapes of the folded weights and of the removed Transposes' outputs are stale now
    stale = {t.input[0] for t in folded} | {t.output[0] for t in folded}
    kept = [v for v in graph.value_info if v.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def set_metadata(proto: Any, metadata: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        prop = existing.get(key) or proto.metadata_props.add()
        prop.key, prop.value = key, value


def save_proto(proto: Any, path: str | Path) -> Path:
    import onnx

    return atomic_write(path, lambda tmp: onnx.save_model(proto, tmp))


# ---- reading ---------------------------------------------------------------------------------
def read_onnx(path: str | Path) -> Any:
    """The ModelProto of an .onnx file, checked; every problem is one line naming the file.
    External data (weights in side files) is refused: the graph could name any file on disk."""
    import onnx
    from google.protobuf.message import DecodeError

    path = guarded.expect_file(path, "ONNX file")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
        onnx.checker.check_model(proto)
    except (DecodeError, onnx.checker.ValidationError, ValueError, RuntimeError, OSError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HRMEvalError(f"cannot read ONNX model {path} (truncated or corrupt?): {msg}") from e
    if any(i.data_location == onnx.TensorProto.EXTERNAL for i in proto.graph.initializer):
        raise HRMEvalError(f"{path}: weights stored in external files are not supported (export them inline)")
    names = [i.name for i in proto.graph.input]
    if names != list(STEP_INPUTS) or [o.name for o in proto.graph.output] != list(STEP_OUTPUTS):
        raise HRMEvalError(f"{path} is not an hrm-eval ACT step graph: inputs {names} (expected {list(STEP_INPUTS)})")
    return proto


def onnx_config(path: str | Path, proto: Any | None = None) -> tuple[ModelConfig, dict[str, str]]:
    """(the architecture, all metadata) stored in an exported .onnx file."""
    from pydantic import ValidationError

    proto = proto if proto is not None else read_onnx(path)
    metadata = {p.key: p.value for p in proto.metadata_props}
    if CONFIG_METADATA_KEY not in metadata:
        raise HRMEvalError(f"{path}: no {CONFIG_METADATA_KEY} metadata (not exported by hrm-eval)")
    where = f"{path}: the {CONFIG_METADATA_KEY} metadata"
    fields = guarded.mapping(guarded.parse_json(metadata[CONFIG_METADATA_KEY], where), where, "a JSON object")
    try:
        config = ModelConfig(**fields)
    except ValidationError as e:
        raise HRMEvalError(f"{where}: {validation_error_line(e)}") from None
    return config, metadata


def metadata_disagreements(proto: Any, config: ModelConfig) -> list[str]:
    """Where the stored architecture (metadata) disagrees with the graph's own fixed dimensions:
    the metadata is what evaluation trusts, so inspect must not print it as fact."""
    expected = {  # (graph value, axis) -> (config field, value)
        ("z_H", 1): ("full seq_len", config.full_seq_len),
        ("z_H", 2): ("hidden_size", config.hidden_size),
        ("inputs", 1): ("seq_len", config.seq_len),
        ("logits", 2): ("vocab_size", config.vocab_size),
    }
    dims = {}
    for v in [*proto.graph.input, *proto.graph.output]:
        for axis, d in enumerate(v.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                dims[(v.name, axis)] = d.dim_value
    return [
        f"the metadata says {field} {value} but the graph's {name} has {dims[(name, axis)]} on axis {axis}"
        for (name, axis), (field, value) in expected.items()
        if (name, axis) in dims and dims[(name, axis)] != value
    ]


def format_onnx_inspection(path: str | Path) -> str:
    """What `--mode inspect` shows for an exported .onnx file."""
    from onnx import numpy_helper

    proto = read_onnx(path)
    config, metadata = onnx_config(path, proto)
    dtypes: dict[str, int] = {}
    values = 0
    for init in proto.graph.initializer:
        try:
            array = numpy_helper.to_array(init)
        except (ValueError, TypeError) as e:  # dims that disagree with the data it holds
            dims = list(init.dims)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HRMEvalError(
                f"{path}: initializer {init.name} declares dims {dims} but its data does not fit ({reason})"
            ) from None
        dtypes[str(array.dtype)] = dtypes.get(str(array.dtype), 0) + 1
        values += int(array.size)
    disagreements = metadata_disagreements(proto, config)
    for line in disagreements:
        log.warning("%s: %s", path, line)

    def shape(v: Any) -> str:
        return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim) + "]"

    rows = [
        ("file", str(path)),
        ("sha256", sha256_file(path)),
        ("format", f"ONNX (opset {max(o.version for o in proto.opset_import)}, {proto.producer_name})"),
        ("family / variant", f"{config.family.upper()} / {config.variant}"),
        ("training step", metadata.get("training_step") or "None"),
        ("source sha256", metadata.get("source_sha256", "?")),
        ("quantization", metadata.get("quantization", "none")),
        ("graph nodes", f"{len(proto.graph.node):,}"),
        ("initializers", f"{len(proto.graph.initializer):,} ({values:,} values)"),
        ("initializer dtypes", ", ".join(f"{k}: {v}" for k, v in sorted(dtypes.items()))),
        ("inputs", ", ".join(f"{v.name} {shape(v)}" for v in proto.graph.input)),
        ("outputs", ", ".join(f"{v.name} {shape(v)}" for v in proto.graph.output)),
    ]
    rows += [(k, str(getattr(config, k))) for k in ("hidden_size", "num_heads", "H_layers", "L_layers")]
    rows += [(k, str(getattr(config, k))) for k in ("H_cycles", "L_cycles", "halt_max_steps", "vocab_size", "seq_len")]
    rows += [("WARNING", line) for line in disagreements]
    width = max(len(k) for k, _ in rows)
    return "\n".join(["ONNX ACT step"] + [f"  {k:<{width}}  {v}" for k, v in rows])
