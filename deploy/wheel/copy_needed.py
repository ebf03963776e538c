"""Copies the shared libraries a program needs (its DT_NEEDED, recursively) from the given
folders into DEST, glibc's own excepted (the system that runs it has those): the orchard CLI
that deploy/build-wheel builds against the bullseye tree, run by deploy/test-wheel with
LD_LIBRARY_PATH=DEST.

    python copy_needed.py PROGRAM DEST DIR...
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

# Part of glibc (libc6): always there, and must match the system's ld.so.
GLIBC = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
         "ld-linux-x86-64.so.2", "libutil.so.1", "libresolv.so.2", "libanl.so.1",
         "libmvec.so.1", "libnsl.so.1", "libBrokenLocale.so.1"}


def needed(path: Path) -> list[str]:
    with path.open("rb") as f:
        for section in ELFFile(f).iter_sections():
            if isinstance(section, DynamicSection):
                return [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    return []


def main() -> None:
    program, dest, dirs = Path(sys.argv[1]), Path(sys.argv[2]), [Path(d) for d in sys.argv[3:]]
    dest.mkdir(parents=True, exist_ok=True)
    todo, seen = [program], set()
    while todo:
        for name in needed(todo.pop()):
            if name in GLIBC or name in seen:
                continue
            seen.add(name)
            found = next((d / name for d in dirs if (d / name).exists()), None)
            if found is None:
                sys.exit(f"copy_needed: {name} not found in {', '.join(map(str, dirs))}")
            shutil.copy(found.resolve(), dest / name)
            todo.append(dest / name)
    print("\n".join(sorted(seen)))


if __name__ == "__main__":
    main()
