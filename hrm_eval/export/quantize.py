"""int8 weights for the linear layers of an exported ONNX step (onnxruntime's dynamic quantization).

Every MatMul / Gemm weight (attention and MLP projections, lm_head, q_head) is stored in int8
with one scale per output channel; activations are quantized to uint8 on the fly, per tensor,
at each call. Embeddings, norms and RoPE stay fp32.

Why onnxruntime's and not PyTorch's: `torch.ao.quantization.quantize_dynamic` swaps only
`nn.Linear` modules (the models here use their own CastedLinear, which it would skip) and is
deprecated in favour of torchao; onnxruntime's works on the graph, ships int8 kernels for
x86 (VNNI / AMX) and ARM, and the quantized file is what gets deployed.

Whether the answers survive is measured, not assumed: `compare_outputs` gives exact accuracy,
token accuracy and argmax agreement of int8 against fp32 on the same puzzles, and callers
refuse (export) or warn (evaluate) above `MAX_EXACT_DROP_POINTS`.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hrm_eval.export.config import MAX_EXACT_DROP_POINTS
from hrm_eval.export.onnx import quiet_logs, save_proto, set_metadata
from hrm_eval.inference.runner import FinishedRows
from hrm_eval.utils.errors import HRMEvalError

INT8_DESCRIPTION = "int8 weights (per output channel), dynamic uint8 activations; onnxruntime quantize_dynamic"


def quantize_int8(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Write an int8-weight copy of an exported fp32 step (metadata kept, `quantization` set)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = onnx.load_model(str(fp32_path))
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.int8.onnx"
        try:
            with quiet_logs():
                quantize_dynamic(
                    str(fp32_path),
                    str(staged),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul", "Gemm"],
                )
        except Exception as e:  # noqa: BLE001 - its failures are ValueErrors, KeyErrors, onnx errors...
            raise HRMEvalError(f"int8 quantization of {fp32_path} failed: {type(e).__name__}: {e}") from e
        proto = onnx.load_model(str(staged))
    set_metadata(proto, {p.key: p.value for p in source.metadata_props})
    set_metadata(proto, {"quantization": INT8_DESCRIPTION})
    return save_proto(proto, out_path)


@dataclass
class QuantizationCost:
    """int8 against fp32 on the same puzzles (rows in the same order)."""

    puzzles: int
    exact_accuracy_fp32: float
    exact_accuracy_int8: float
    token_accuracy_fp32: float
    token_accuracy_int8: float
    argmax_agreement: float  # fraction of scored tokens where the two answers agree
    answer_agreement: float  # fraction of puzzles whose whole answers agree
    exact_drop_points: float  # 100 * (fp32 - int8) exact accuracy
    threshold_points: float = MAX_EXACT_DROP_POINTS

    @property
    def acceptable(self) -> bool:
        return self.exact_drop_points <= self.threshold_points

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"acceptable": self.acceptable}


def compare_outputs(fp32: FinishedRows, int8: FinishedRows, labels: torch.Tensor) -> QuantizationCost:
    """The cost of int8 from two runs over the same rows (`run_all` results, input order);
    `labels` [n, L] with -100 where a position is not scored."""
    scored = labels != -100  # [n, L]
    a, b = fp32.preds, int8.preds  # [n, L]
    n, tokens_scored = len(labels), max(int(scored.sum()), 1)  # fractions from exact counts

    def exact(p: torch.Tensor) -> float:
        return int(((p == labels) | ~scored).all(-1).sum()) / n

    def tokens(p: torch.Tensor) -> float:
        return int(((p == labels) & scored).sum()) / tokens_scored

    e32, e8 = exact(a), exact(b)
    return QuantizationCost(
        puzzles=len(labels),
        exact_accuracy_fp32=e32,
        exact_accuracy_int8=e8,
        token_accuracy_fp32=tokens(a),
        token_accuracy_int8=tokens(b),
        argmax_agreement=int(((a == b) & scored).sum()) / tokens_scored,
        answer_agreement=int(((a == b) | ~scored).all(-1).sum()) / n,
        exact_drop_points=round(100 * (e32 - e8), 6),
    )
