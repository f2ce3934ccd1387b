"""Binary-kernel statistics and QBN codebooks (docs/study.md: kernel id, entropy, coverage, QBN)."""

from .codebook_choice import (
                       CodebookError,
                       bits_accounting,
                       check_bits,
                       choose_bits_by_distortion,
                       choose_bits_for_budget,
                       distortion_curve,
                       flipped_share,
                       layer_bits,
                       map_to_codebook,
                       quantize_ste,
                       quantized_kernels,
                       select_codebook,
)
from .histograms import (
                       NUM_IDS,
                       coverage,
                       entropy,
                       histogram,
                       ids_to_kernels,
                       is_kernel_tensor,
                       kernel_ids,
                       most_frequent,
                       summarize,
                       symmetric_class,
                       top_shares,
                       uniform_coverage,
)

__all__ = [
    "NUM_IDS", "CodebookError", "bits_accounting", "check_bits", "choose_bits_by_distortion", "choose_bits_for_budget",
    "coverage", "distortion_curve", "entropy", "flipped_share",
    "histogram", "ids_to_kernels", "is_kernel_tensor", "kernel_ids", "layer_bits", "map_to_codebook",
    "most_frequent", "quantize_ste", "quantized_kernels", "select_codebook", "summarize", "symmetric_class",
    "top_shares", "uniform_coverage",
]
