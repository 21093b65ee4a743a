#!/usr/bin/env bash
# Build the interfaces in msg/ into a Python virtual environment with plain CMake (no colcon).
#
#   tools/build_msgs.sh [VENV] [BUILD_DIR]      (defaults: .venv, build/msgs)
#
# The venv must already hold the ROS 2 wheels from requirements.txt (rosidl generators, ament
# CMake, std_msgs, ...); it is both the ament prefix the build reads and the prefix it installs
# to. Only the message bindings are installed (LFN_ROS_INSTALL_PYTHON=OFF): the lfn_ros sources
# are an editable install, and lfn_ros/__init__.py joins the two (see CMakeLists.txt).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(cd "${1:-$root/.venv}" && pwd)"
build="${2:-$root/build/msgs}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
python="$venv/bin/python"

for tool in cmake cc c++; do
  command -v "$tool" > /dev/null \
    || { echo "build_msgs: '$tool' not found; install cmake and a C/C++ compiler (apt install cmake g++)" >&2; exit 1; }
done
"$python" -c "import os, sysconfig; raise SystemExit(not os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
  || { echo "build_msgs: Python.h not found for $python; install the Python headers (apt install python3-dev)" >&2; exit 1; }
mkdir -p "$(dirname "$build")"

# Defect (a) of the wheels: CMake exports naming the wheel builder's Python/numpy include dirs.
"$python" "$root/tools/fix_rosidl_wheels.py" "$venv"

export AMENT_PREFIX_PATH="$venv"
export CMAKE_PREFIX_PATH="$venv"
export PATH="$venv/bin:$PATH"
jobs="$(nproc 2>/dev/null || echo 2)"

cmake -S "$root" -B "$build" \
  -DCMAKE_INSTALL_PREFIX="$venv" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_TESTING=OFF \
  -DLFN_ROS_INSTALL_PYTHON=OFF \
  -DPython3_EXECUTABLE="$python" \
  -DPython3_FIND_VIRTUALENV=ONLY \
  --log-level=WARNING > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; echo "build_msgs: cmake configure failed" >&2; exit 1; }
cmake --build "$build" --parallel "$jobs" > "$build.build.log" 2>&1 \
  || { tail -n 60 "$build.build.log"; echo "build_msgs: build failed (full log: $build.build.log)" >&2; exit 1; }
cmake --install "$build" > "$build.install.log" 2>&1 \
  || { tail -n 30 "$build.install.log"; echo "build_msgs: install failed" >&2; exit 1; }

# The bindings must import from the venv, whatever the current directory.
(cd / && "$python" -c "from lfn_ros.msg import FlowTiming; FlowTiming()") \
  || { echo "build_msgs: lfn_ros.msg does not import from $venv" >&2; exit 1; }
echo "build_msgs: lfn_ros.msg built and installed into $venv"
