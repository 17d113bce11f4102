"""Data sets shipped inside the package (see the README beside each folder for source and licence).

Read through `importlib.resources`, so commands find them in a wheel install as in a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# Named data sets a command accepts in place of a path.
ROUTELLM = {
    "gsm8k": "routellm/gsm8k_responses.csv.gz",
    "mmlu": "routellm/mmlu",
    "mt-bench": "routellm/mt_bench_judgements.jsonl.gz",
}
TRACES = {
    "azure-conv": "traces/AzureLLMInferenceTrace_conv.csv.gz",
    "azure-code": "traces/AzureLLMInferenceTrace_code.csv.gz",
    "azure-conv-slice": "traces/azure_conv_slice.csv",
}


def bundled(relative: str) -> Path:
    """The path of a packaged data file or folder.

    pip installs packages as plain directories, so the resource is a real file on disk; the
    `Path` is what pandas and the CSV readers take.
    """
    return Path(str(files("tokenomy.data").joinpath(relative)))


def examples(relative: str = "") -> Path:
    """A file under the packaged `examples/` (task files, configs, routing rules)."""
    root = Path(str(files("tokenomy").joinpath("examples")))
    return root / relative if relative else root
