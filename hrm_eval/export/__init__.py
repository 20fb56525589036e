"""Taking a model out of hrm-eval: a safetensors model folder, an ONNX graph of one ACT step,
int8 weights.

    checkpoint (step_<N>, run dir, folder, .safetensors)
        -> write_model_folder   model.safetensors + config.json + README.md   (hrm_eval.export.folder)
        -> export_onnx          model.onnx: one ACT step, dynamic batch       (hrm_eval.export.onnx)
        -> quantize_int8        model.int8.onnx: int8 linear weights          (hrm_eval.export.quantize)
    a model in memory (ACTModel)
        -> save_model           the same model folder; push_model uploads it  (hrm_eval.export.folder)

The reading side lives where every checkpoint is read: `hrm_eval.models.checkpoint` accepts a
model folder or a bare `.safetensors` file wherever a checkpoint is accepted, and
`hrm_eval.inference.onnx_runner` runs the ACT loop over an ONNX step in onnxruntime.
"""

from __future__ import annotations

from hrm_eval.utils.lazy import lazy_exports

# Imported on first use: `import hrm_eval.export.config` (the command line) stays free of torch.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "hrm_eval.export.folder": ["CONFIG_FILE", "WEIGHTS_FILE", "write_model_folder", "save_model", "push_model"],
    },
)
