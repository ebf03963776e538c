"""The two wheel-file steps of deploy/build-wheel (no third-party module; host Python 3.11).

    make_wheel.py TREE TAG OUT_DIR ORT_SITE SYSROOT
        TREE holds the installed package (orchard/, with the module, the model and
        orchard/_onnxruntime/) and orchard_features-V.dist-info/ as scikit-build-core made
        it from pyproject.toml. Writes OUT_DIR/orchard_features-V-TAG-TAG-linux_x86_64.whl
        (printed): the WHEEL tag set to TAG, the onnxruntime requirement dropped from
        METADATA when the package bundles ONNX Runtime, the licences of what is bundled
        (ONNX Runtime, OpenCV and its 3rdparty code, OpenBLAS) added under
        dist-info/licenses/third-party/, and a RECORD.

    make_wheel.py --licenses WHEEL SYSROOT OUT_DIR
        After auditwheel: adds the Debian copyright file of the package each library in
        orchard_features.libs/ came from (and a list of them, BUNDLED.txt), rewrites RECORD,
        writes the wheel to OUT_DIR under the same name.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

# Fixed timestamps: the same inputs give the same wheel bytes.
DATE = (2020, 1, 1, 0, 0, 0)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_zip(path: Path, files: dict[str, tuple[bytes, int]], dist_info: str) -> None:
    """files: archive name -> (bytes, unix mode). RECORD is computed and written last."""
    names = sorted(n for n in files if not n.startswith(dist_info + "/"))
    names += sorted(n for n in files if n.startswith(dist_info + "/") and n != f"{dist_info}/RECORD")
    record = [_record_line(n, files[n][0]) for n in names] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode(), 0o644
    names.append(f"{dist_info}/RECORD")
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for name in names:
            data, mode = files[name]
            info = zipfile.ZipInfo(name, DATE)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    tmp.replace(path)


def make(tree: Path, tag: str, out_dir: Path, ort_site: Path, sysroot: Path) -> Path:
    dist_info = next(p.name for p in tree.glob("*.dist-info"))
    name, version = dist_info[: -len(".dist-info")].rsplit("-", 1)
    licenses = tree / dist_info / "licenses" / "third-party"
    bundled_ort = sorted((tree / "orchard" / "_onnxruntime").glob("libonnxruntime.so*"))

    metadata = (tree / dist_info / "METADATA").read_text()
    if bundled_ort:
        # The package loads its own copy: no second one from PyPI (and none is needed offline).
        metadata = re.sub(r"^Requires-Dist: onnxruntime\b.*\n", "", metadata, flags=re.M)
        for f in ["LICENSE", "ThirdPartyNotices.txt"]:
            _copy(ort_site / f, licenses / "onnxruntime" / f)
    (tree / dist_info / "METADATA").write_text(metadata)
    opencv = sysroot / "opt" / "opencv"
    for f in sorted(opencv.glob("LICENSE*")):
        _copy(f, licenses / "opencv" / f.name)
    _copy(sysroot / "opt" / "scipy-openblas32" / "LICENSE.txt", licenses / "openblas" / "LICENSE.txt")

    wheel_file = tree / dist_info / "WHEEL"
    lines = [l for l in wheel_file.read_text().splitlines()
             if l.strip() and not l.startswith(("Tag:", "Generator:"))]
    lines.insert(1, "Generator: deploy/build-wheel (metadata: scikit-build-core)")
    lines.append(f"Tag: {tag}-{tag}-linux_x86_64")
    wheel_file.write_text("\n".join(lines) + "\n")

    files = {}
    for p in sorted(tree.rglob("*")):
        if p.is_file() and p.name != "RECORD":
            files[p.relative_to(tree).as_posix()] = (p.read_bytes(), p.stat().st_mode & 0o777)
    out = out_dir / f"{name}-{version}-{tag}-{tag}-linux_x86_64.whl"
    _write_zip(out, files, dist_info)
    return out


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())


def _debian_package(sysroot: Path, lib: str) -> tuple[str, str] | None:
    """(package, version) of the tree's package that holds the library file `lib`."""
    for folder in ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]:
        path = sysroot / folder / lib
        if not path.exists():
            continue
        real = "/" + path.resolve().relative_to(sysroot.resolve()).as_posix()
        for candidate in {f"/{folder}/{lib}", real, real.replace("/usr/lib/", "/lib/")}:
            found = subprocess.run(["dpkg", f"--root={sysroot}", "-S", candidate],
                                   capture_output=True, text=True)
            if found.returncode == 0:
                package = found.stdout.split(":")[0].strip()
                break
        else:
            # Debian 12 packages unpacked with dpkg -x (not in the tree's dpkg database).
            listing = sysroot / "opt" / "extra-debs.list"
            package = next((l.split()[0] for l in listing.read_text().splitlines()
                            if l.split()[1].endswith("/" + lib) or l.split()[1].endswith(real)),
                           None) if listing.exists() else None
            if package is None:
                return None
        versions = dict(l.split(" ", 1) for l in
                        (sysroot / "opt" / "packages.txt").read_text().splitlines() if " " in l)
        return package, versions.get(package, "?")
    return None


def add_licenses(wheel: Path, sysroot: Path, out_dir: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        files = {i.filename: (z.read(i), (i.external_attr >> 16) & 0o777 or 0o644)
                 for i in z.infolist() if not i.is_dir()}
    dist_info = next(n.split("/")[0] for n in files if n.split("/")[0].endswith(".dist-info"))
    libs_dir = next((n.split("/")[0] for n in files if n.split("/")[0].endswith(".libs")), None)
    lines = ["Shared libraries in this wheel, and where they come from (deploy/build-wheel):", ""]
    for name in sorted(files):
        if libs_dir is None or not name.startswith(libs_dir + "/"):
            continue
        lib = name.split("/", 1)[1]
        original = re.sub(r"^([^.]*)-[0-9a-f]{8}\.", r"\1.", lib)  # auditwheel's hashed name
        if any(k in original for k in ("scipy_openblas", "gfortran", "quadmath")):
            lines.append(f"{lib}: OpenBLAS (scipy-openblas32), see third-party/openblas/")
            continue
        found = _debian_package(sysroot, original)
        if found is None:
            sys.exit(f"make_wheel: no Debian package found for {lib} ({original})")
        package, version = found
        copyright_file = sysroot / "usr" / "share" / "doc" / package / "copyright"
        if copyright_file.exists():
            files[f"{dist_info}/licenses/third-party/debian/{package}.copyright"] = (
                copyright_file.read_bytes(), 0o644)
        lines.append(f"{lib}: Debian package {package} {version}, see third-party/debian/")
    files[f"{dist_info}/licenses/third-party/BUNDLED.txt"] = (("\n".join(lines) + "\n").encode(), 0o644)
    files.pop(f"{dist_info}/RECORD", None)
    out = out_dir / wheel.name
    _write_zip(out, files, dist_info)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--licenses":
        print(add_licenses(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])))
    else:
        print(make(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]),
                   Path(sys.argv[5])))
