"""lfn_ros: dense optical flow with LiteFlowNet for ROS 2."""

# The message bindings generated from msg/ (lfn_ros.msg and its typesupport modules) can live in
# another directory than these sources: `make` builds them into the virtual environment's
# site-packages while the sources stay an editable install of this tree. extend_path adds every
# other lfn_ros directory on sys.path to this package, so lfn_ros.msg and lfn_ros.model import
# side by side. In a colcon install both are in one directory and this changes nothing.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
