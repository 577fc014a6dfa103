"""Calibration text for the methods that need data, behind one function.

    from calibration import load_calibration
    samples = load_calibration(cfg, tokenizer)      # a CalibrationSet
    samples.to_dataset()                            # input_ids/attention_mask, for llm-compressor

Sources (`calibration.source`): the named sets described by `hydra_conf/calibration/*.yaml`
(openmath, pileval, wikitext2, c4, ultrachat: loaded through `datasets.load_dataset`;
tiny: the tiny family's calibration file) and `file:/path/to/data.{txt,jsonl,json,parquet}`.
"""

from calibration.loading import CalibrationSet, load_calibration

__all__ = ["CalibrationSet", "load_calibration"]
