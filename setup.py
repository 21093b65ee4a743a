"""pip / wheel packaging of lfn_ros (ROS installs use CMakeLists.txt through colcon instead).

The message bindings (lfn_ros.msg) are not built here: they need rosidl, see tools/build_msgs.sh
and `make msgs`. Exact versions for the development environment are pinned in requirements.txt.
"""

from setuptools import find_packages, setup

setup(
    name="lfn_ros",
    version="0.1.0",
    description="Dense optical flow with LiteFlowNet for ROS 2",
    author="lfn_ros team",
    author_email="lfn-ros@example.com",
    license="Apache-2.0",
    python_requires=">=3.10",
    # An explicit root makes `pip install -e .` put this directory on sys.path (a static .pth)
    # instead of an import hook: the message bindings built into site-packages/lfn_ros are then
    # joined to this lfn_ros package by lfn_ros/__init__.py.
    package_dir={"": "."},
    packages=find_packages(include=["lfn_ros", "lfn_ros.*"]),
    package_data={
        "lfn_ros": [
            "weights/*",  # shipped checkpoints and their README.md (model card)
            "model/layouts/*.json",  # manifests of the published weights' layouts
            "data/sequence/*",  # demo frames, when present
        ],
    },
    # What the node and `lfn-ros infer` need; the heavier tools are extras (test/test_packaging.py
    # checks these lists against the imports, both ways).
    install_requires=[
        "numpy>=1.22",
        "opencv-python-headless>=4.5",
        "tqdm>=4.60",
        "PyYAML>=5.3",  # image_player's camera_info files
        "torch>=2.0",
    ],
    extras_require={
        "train": ["scikit-image>=0.19", "matplotlib>=3.5"],  # lfn-ros train (textures, curves)
        "evaluate": ["matplotlib>=3.5"],  # lfn-ros evaluate --plot
        "export": ["onnx>=1.14", "onnxruntime>=1.16"],  # lfn-ros export --onnx (+ its check)
        "raft": ["torchvision>=0.15"],  # the RAFT-small peer in lfn-ros evaluate (GPU)
        "openvino": ["openvino>=2024.0"],  # the engine's fastest CPU backend (backend auto picks it)
        "int8": ["openvino>=2024.0", "nncf>=2.10"],  # precision int8 (NNCF quantises the OpenVINO graphs)
        "bags": ["rosbags>=0.10"],  # lfn-ros infer BAG, image_player bag=... (ROS 2 bags without ROS)
    },
    entry_points={
        "console_scripts": [
            "lfn-ros=lfn_ros.cli:main",
            "flow_node=lfn_ros.nodes.flow_node:main",
            "image_player=lfn_ros.nodes.image_player:main",
            "flow_odometry=lfn_ros.nodes.flow_odometry:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: POSIX :: Linux",
        "Framework :: Robot Framework",
    ],
)
