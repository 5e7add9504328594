"""What fuse() did: the blocks it fused, the convolutions it left (each with why) and notes (a
forward fx could not trace, calls traced again at run time)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FusedEntry:
    where: str          # the module whose forward now runs the block ("" for the model itself)
    how: str            # "Sequential" or "fx trace"
    block: object       # the FusedBlock
    stop: str = ""      # why the chain ends where it does

    def __str__(self) -> str:
        stop = f"; {self.stop}" if self.stop else ""
        return f"fused  {self.block.extra_repr()}   (in {self.where or '<model>'}, {self.how}{stop})"


@dataclass
class FuseReport:
    fused: list = field(default_factory=list)   # FusedEntry, in the order found
    left: dict = field(default_factory=dict)    # conv path -> why it was not fused
    notes: list = field(default_factory=list)

    def add_fused(self, entry: FusedEntry, conv_path: str) -> None:
        if all(e.block is not entry.block for e in self.fused):
            self.fused.append(entry)
        self.left.pop(conv_path, None)

    def add_left(self, conv_path: str, reason: str) -> None:
        if not any(conv_path in e.block.names for e in self.fused):
            self.left[conv_path] = reason

    def add_note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def __str__(self) -> str:
        lines = [f"fuseblock.torch.fuse: {len(self.fused)} block(s) fused, {len(self.left)} convolution(s) left"]
        lines += [str(e) for e in self.fused]
        lines += [f"left   {path}: {why}" for path, why in self.left.items()]
        lines += [f"note   {n}" for n in self.notes]
        return "\n".join(lines)
