"""AutoGPTQ 0.7.1: declared as a backend of method=gptq so that choosing it says why the lab
does not run it. Measured in .venv-legacy: AutoGPTQ refuses to quantize without CUDA
("requires CUDA available"), has no Qwen3, and its bundled CUDA kernels fail to load
against torch 2.6 (undefined symbol)."""

from __future__ import annotations

from quantize.backends.base import Backend, register


@register
class AutoGPTQ(Backend):
    name = "auto-gptq"
    library = ("AutoGPTQ 0.7.1 (unmaintained; quantizes only on a CUDA GPU, no Qwen3 support, its CUDA kernels do "
               "not load with torch 2.6)")
    environment = "legacy"
    implemented = False
