#!/bin/bash
# Evaluate a checkpoint across SLURM nodes: one torchrun per node, 8 GPUs each, rendezvous on
# the first node of the allocation. Submit with `sbatch examples/slurm_evaluate.sh`.
# CHECKPOINT, DATA and OUTPUT may be set in the environment; OUTPUT must be on a file system
# every node sees (results, and the resume logs that --resume reads).
#SBATCH --job-name=hrm-eval
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.log
set -euo pipefail

CHECKPOINT=${CHECKPOINT:-checkpoints/sudoku6-hard-hrm}
DATA=${DATA:-checkpoints/sudoku6-hard-hrm/data}
OUTPUT=${OUTPUT:-outputs/evaluate/slurm-${SLURM_JOB_ID}}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

# A requeued job (--requeue, or a preempted one) continues where it stopped: --resume skips the
# puzzles already finished (on the first run there is nothing to skip).
srun torchrun \
    --nnodes "$SLURM_NNODES" \
    --nproc-per-node "$GPUS_PER_NODE" \
    --rdzv-backend c10d \
    --rdzv-endpoint "$HEAD:29500" \
    --rdzv-id "$SLURM_JOB_ID" \
    deploy.py --mode evaluate \
    --checkpoint "$CHECKPOINT" --data "$DATA" --output "$OUTPUT" \
    --resume --no-progress
