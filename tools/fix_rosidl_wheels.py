#!/usr/bin/env python3
"""Point the ROS wheels' rosidl_generator_py CMake exports at this Python.

The ROS 2 PyPI wheels install `<prefix>/share/<pkg>/cmake/export_<pkg>__rosidl_generator_pyExport.cmake`
files whose INTERFACE_INCLUDE_DIRECTORIES name the Python and numpy include directories of the
machine that built the wheels (e.g. /opt/python/cp311-cp311/...). A package that generates
messages depending on them (lfn_ros: std_msgs, builtin_interfaces) then fails to configure or
compile. This rewrites every include directory that does not exist to this interpreter's
`sysconfig.get_paths()['include']` and `numpy.get_include()`. Idempotent; run it with the
virtual environment's python. Usage: fix_rosidl_wheels.py [PREFIX] (default: sys.prefix).
"""

import glob
import os
import re
import sys
import sysconfig

PATTERN = re.compile(r'(INTERFACE_INCLUDE_DIRECTORIES\s+")([^"]*)(")')


def wanted_includes():
    import numpy

    return [sysconfig.get_paths()["include"], numpy.get_include()]


def fix_file(path, includes):
    """Rewrite one export file; return True when it changed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()

    def repl(match):
        dirs = [d for d in match.group(2).split(";") if d]
        if all(os.path.isdir(d) for d in dirs):
            return match.group(0)
        kept = [d for d in dirs if os.path.isdir(d) and d not in includes]
        return match.group(1) + ";".join(includes + kept) + match.group(3)

    new = PATTERN.sub(repl, text)
    if new == text:
        return False
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
    return True


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    prefix = argv[0] if argv else sys.prefix
    files = sorted(glob.glob(os.path.join(prefix, "share", "*", "cmake", "*__rosidl_generator_pyExport.cmake")))
    includes = wanted_includes()
    changed = sum(fix_file(p, includes) for p in files)
    print(f"fix_rosidl_wheels: {len(files)} rosidl_generator_py exports, {changed} rewritten "
          f"to {';'.join(includes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
