"""Byte-reproducible TorchScript export.

Registration keys a model on the sha256 of its artifact bytes, so the same weights must give
the same file. TorchScript does not by itself: it writes a random `serialization_id`, and it
emits a module's constants in set order, which follows the interpreter's hash seed. The
export therefore runs in a child interpreter with PYTHONHASHSEED=0, and the id is replaced by
a digest of the archive's other entries.
"""

import hashlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from components import artifacts

__all__ = ["canonical_torchscript", "export_torchscript", "scaled_mlp"]


def canonical_torchscript(raw: bytes) -> bytes:
    """The same TorchScript archive with its per-process `serialization_id` made content-derived.

    torch writes a fresh id into every archive, so identical weights would hash differently in
    each process and registration by artifact hash would never reuse a version. The id becomes
    a digest of the other entries (same length, digits only) and both CRC fields are updated;
    torch's reader needs the entries where they are, so the bytes are patched in place.
    """
    data = bytearray(raw)
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        digest = hashlib.sha256()
        target = None
        for info in archive.infolist():
            if info.filename.endswith(".data/serialization_id"):
                target = info
                continue
            digest.update(info.filename.encode())
            digest.update(archive.read(info))
        if target is None or target.compress_type != zipfile.ZIP_STORED:
            return raw
        old = archive.read(target)
    new = str(int(digest.hexdigest(), 16)).encode()[: len(old)].rjust(len(old), b"0")
    offset = target.header_offset
    name_length, extra_length = struct.unpack("<HH", data[offset + 26 : offset + 30])
    start = offset + 30 + name_length + extra_length
    if bytes(data[start : start + len(old)]) != old:
        return raw
    data[start : start + len(old)] = new
    crc = struct.pack("<I", zlib.crc32(new))
    data[offset + 14 : offset + 18] = crc
    central = data.find(b"PK\x01\x02")
    while central != -1:
        if struct.unpack("<I", data[central + 42 : central + 46])[0] == offset:
            data[central + 16 : central + 20] = crc
            break
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def scaled_mlp(
    mean: np.ndarray,
    std: np.ndarray,
    hidden: list[int],
    regression: bool = False,
    target_mean: float = 0.0,
    target_std: float = 1.0,
) -> Any:
    """An MLP that standardises raw features itself, so serving sends raw values, and returns
    a probability (binary) or a value in the target's own units (regression)."""
    import torch
    from torch import nn

    class ScaledMLP(nn.Module):
        mean: torch.Tensor
        std: torch.Tensor
        target_mean: torch.Tensor
        target_std: torch.Tensor
        regression: bool

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("std", torch.from_numpy(std))
            self.register_buffer("target_mean", torch.tensor([target_mean], dtype=torch.float32))
            self.register_buffer("target_std", torch.tensor([target_std], dtype=torch.float32))
            self.regression = regression
            layers: list[nn.Module] = []
            previous = len(mean)
            for size in hidden:
                layers += [nn.Linear(previous, size), nn.ReLU()]
                previous = size
            layers.append(nn.Linear(previous, 1))
            self.net = nn.Sequential(*layers)

        def logits(self, features: torch.Tensor) -> torch.Tensor:
            result: torch.Tensor = self.net((features - self.mean) / self.std)
            return result

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            if self.regression:
                return self.logits(features) * self.target_std + self.target_mean
            return torch.sigmoid(self.logits(features))

    ScaledMLP.__qualname__ = ScaledMLP.__name__ = "ScaledMLP"
    return ScaledMLP()


def export_torchscript(checkpoint: dict[str, Any], model_path: str) -> None:
    """Script the MLP held in `checkpoint` (state dict and layer sizes) into `model_path`."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "checkpoint.pt"
        target = Path(tmp) / "model.pt"
        torch.save(checkpoint, source)
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        completed = subprocess.run(
            [sys.executable, "-m", "components.steps.torchscript_export", str(source), str(target)],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"TorchScript export failed:\n{completed.stderr[-2000:]}")
        artifacts.write_bytes(model_path, target.read_bytes())


def _main(source: str, target: str) -> None:
    import torch

    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    state = checkpoint["state"]
    regression = bool(checkpoint.get("regression", False))
    model = scaled_mlp(state["mean"].numpy(), state["std"].numpy(), list(checkpoint["hidden"]), regression)
    model.load_state_dict(state)
    model.eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    Path(target).write_bytes(canonical_torchscript(buffer.getvalue()))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
