#!/usr/bin/env python3
"""Checks that every #include "dir/..." in src/ stays within the module
dependencies declared in src/CMakeLists.txt (vane_module ... DEPENDS).

usage: check_layers.py BUILD_DIR/layers.txt SRC_DIR

layers.txt (written by CMake) has one line per module: name=dir:dep,dep,...
A file in src/<dir>/ may include headers of its own directory and of every
module that a module of <dir> depends on, directly or through others. The
link of the vane_*_layer libraries catches calls; this catches what only a
header carries (inline functions, templates, types)."""
import pathlib
import re
import sys


def main() -> int:
    layers_file, src = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    deps: dict[str, list[str]] = {}
    dir_of: dict[str, str] = {}
    for line in layers_file.read_text().splitlines():
        if not line.strip():
            continue
        name, rest = line.split("=", 1)
        d, dep_text = rest.split(":", 1)
        dir_of[name] = d
        deps[name] = [x for x in dep_text.split(",") if x]

    def closure(name: str, seen: set[str]) -> set[str]:
        for d in deps.get(name, []):
            if d not in seen:
                seen.add(d)
                closure(d, seen)
        return seen

    allowed: dict[str, set[str]] = {}
    for name, d in dir_of.items():
        dirs = allowed.setdefault(d, {d})
        dirs.update(dir_of[m] for m in closure(name, set()))

    include = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')
    errors = []
    checked = 0
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".cpp", ".hpp", ".h"):
            continue
        top = path.relative_to(src).parts[0]
        if top not in allowed:
            errors.append(f"{path}: directory '{top}' belongs to no module in {layers_file}")
            continue
        checked += 1
        for n, text in enumerate(path.read_text().splitlines(), 1):
            m = include.match(text)
            if m and m.group(1) not in allowed[top]:
                errors.append(f"{path}:{n}: {top}/ includes {m.group(1)}/, which no module "
                              f"in {top}/ declares as a dependency")
    for e in errors:
        print(e)
    print(f"{checked} files checked, {len(errors)} include(s) outside the declared layers")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
