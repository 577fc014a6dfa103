"""models.loading: what the lab's one loading function sets up around the libraries."""

import logging

import models.loading  # noqa: F401 - installs the filter


def test_bitsandbytes_int8_cast_warning_is_said_once_per_message(caplog):
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    with caplog.at_level(logging.WARNING):
        for _ in range(100):  # as on every int8 matmul of a bfloat16 model
            logger.warning("MatMul8bitLt: inputs will be cast from %s to float16 during quantization", "torch.bfloat16")
        logger.warning("MatMul8bitLt: inputs will be cast from %s to float16 during quantization", "torch.float32")
    messages = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert messages == ["MatMul8bitLt: inputs will be cast from torch.bfloat16 to float16 during quantization",
                        "MatMul8bitLt: inputs will be cast from torch.float32 to float16 during quantization"]
