"""Reading a built artifact: its size, the distributions it carries, and the ELF files in it."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
# e_machine values (the System V ABI's ELF header, offset 18).
EM_MACHINES = {62: "x86_64", 183: "aarch64"}


@dataclass(frozen=True)
class Elf:
    path: Path
    machine: str  # x86_64 | aarch64 | EM_<number> for anything else


def unzipped_size(root: Path) -> int:
    """What Lambda's 250 MB (unzipped) limit counts: the bytes of every file."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def distributions(root: Path) -> dict[str, Path]:
    """Installed distributions in a site directory: canonical name -> its .dist-info."""
    found = {}
    for info in root.glob("*.dist-info"):
        metadata = HeaderParser().parsestr((info / "METADATA").read_text(errors="replace"))
        found[re.sub(r"[-_.]+", "-", metadata["Name"]).lower()] = info
    return found


def versions(root: Path) -> dict[str, str]:
    """Installed distributions in a site directory: canonical name -> the version its METADATA says."""
    found = {}
    for name, info in distributions(root).items():
        metadata = HeaderParser().parsestr((info / "METADATA").read_text(errors="replace"))
        found[name] = metadata["Version"]
    return found


def wheel_tags(info: Path) -> list[str]:
    """The wheel tags a distribution was installed from (its WHEEL file's Tag lines)."""
    wheel = HeaderParser().parsestr((info / "WHEEL").read_text())
    return wheel.get_all("Tag") or []


def elf_files(root: Path) -> list[Elf]:
    """Every ELF file, found by its magic bytes, whatever its name."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as stream:
            header = stream.read(20)
        if len(header) < 20 or not header.startswith(ELF_MAGIC):
            continue
        endian = "<" if header[5] == 1 else ">"  # EI_DATA: 1 little-endian, 2 big-endian
        (machine,) = struct.unpack(endian + "H", header[18:20])
        found.append(Elf(path, EM_MACHINES.get(machine, f"EM_{machine}")))
    return found
