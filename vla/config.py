"""`VLAConfig`: every hyperparameter of the VLA model, one documented dataclass."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from vla.heads import head_class

LANG_DIM = 384
"""Width of the frozen MiniLM sentence embedding (all-MiniLM-L6-v2)."""

LANG_FEATURES: tuple[str, ...] = ("pooled", "tokens")
"""What of MiniLM the model reads: the pooled sentence embedding or per-word-piece states."""


@dataclass
class VLAConfig:
    """Hyperparameters of the VLA model; one instance is stored as ``config.json``.

    The default size (d_model 128, 4 layers, ~1M parameters) trains to a useful policy on a
    2-core CPU in minutes; see :func:`preset` for the larger ``gpu`` size.

    Attributes:
        head: Action head, a name registered in :data:`vla.heads.HEADS` (``ar``, ``diffusion``,
            ``flow``, ``oft``).
        image_size: Side in pixels the camera images are resized to before the CNN.
        cameras: Observation keys of the cameras, in token order (``image``, ``wrist_image``).
        cnn_channels: Output channels of the CNN's stride-2 conv stages.
        image_grid: Side of the pooled feature grid; each camera gives image_grid**2 tokens.
        lang_tokens: With ``lang_features="pooled"``, tokens the projected MiniLM sentence
            embedding is split into; with ``"tokens"``, the number of MiniLM word-piece
            positions kept (``[CLS]`` included, longer instructions truncated, shorter padded).
        lang_features: ``pooled`` (one mean-pooled MiniLM sentence embedding) or ``tokens``
            (MiniLM's last-layer hidden state of every word piece, each its own prefix token,
            padding replaced by a learned pad token), so attention can find the colour and
            zone words instead of decoding them from an embedding entangled with phrasing.
        lang_norm: Standardize MiniLM embeddings per dimension with the training
            instructions' mean and std (stored in the model), so the few dimensions in which
            instructions differ (colours, targets) are not drowned by what they share.
        lang_film: FiLM-modulate the CNN's last feature map with the language (per-channel
            scale and shift, identity at init), as RT-1 conditions its image encoder, so the
            image tokens can depend on which object the instruction names.
        lang_film_all: With ``lang_film``, FiLM-modulate every CNN stage's output (RT-1's
            FiLM-EfficientNet conditions every block), not only the last feature map.
        image_keypoints: Spatial-softmax keypoints per camera (0: none). A 1x1 conv turns the
            (FiLM-modulated) output of CNN stage ``keypoint_stage`` into this many heatmaps;
            each heatmap's expected (x, y) becomes one extra image token (Levine et al. 2016,
            Diffusion Policy). With language FiLM the heatmaps can follow the named block, so
            the policy reads its coordinates directly instead of decoding them from pooled
            features.
        keypoint_stage: 0-based CNN stage whose output map feeds the keypoints (an earlier,
            finer map localizes better).
        state_dropout: Training-time probability that a sample's state token is replaced by a
            learned "no state" token, so the policy cannot act from proprioception alone (the
            gripper's random start position otherwise identifies the demo episode).
        ar_input_noise: AR head only: training-time probability that each teacher-forced input
            token (BOS excluded) is replaced by a uniformly random bin, so the head cannot
            predict a token by copying its neighbours and must read the observation.
        rtc_train_max: OFT head only: training-time real-time chunking (0: off). Each training
            sample gives the head its first ``d ~ U{0..rtc_train_max}`` demo actions as committed
            steps (added to their action queries through a learned projection) and the loss
            covers only the steps after them, so at inference the head continues the actions the
            robot is committed to (``predict_chunk(..., prefix_actions=)``) instead of ignoring
            them. Must be < ``horizon``.
        aux_target_weight: Weight of an auxiliary training loss that regresses, from the
            observation prefix, where the demo grasps and where it releases (the gripper xyz
            at its first closing and its first re-opening action); 0 disables it.
        d_model: Transformer width.
        n_layers: Transformer blocks.
        n_heads: Attention heads per block (must divide d_model).
        mlp_ratio: Hidden width of each block's MLP as a multiple of d_model.
        dropout: Dropout inside the blocks (0 keeps training exactly reproducible).
        horizon: Actions per chunk (H).
        action_dim: Action dimensions (D); taken from the data at training time.
        state_dim: Proprioceptive state dimensions (S); taken from the data.
        n_bins: Uniform bins per action dimension on [-1, 1] for the token heads (OpenVLA: 256).
        flow_time_dist: Flow-matching training time law: ``beta`` (pi0's Beta(1.5, 1) on the
            noise level, i.e. more weight near pure noise) or ``uniform``.
        param_dtype: Storage dtype of ``model.safetensors`` weights (``float16`` or ``float32``).
    """

    head: str = "ar"
    image_size: int = 64
    cameras: tuple[str, ...] = ("image",)
    cnn_channels: tuple[int, ...] = (32, 64, 96, 128)
    image_grid: int = 4
    lang_tokens: int = 1
    lang_norm: bool = True
    lang_film: bool = True
    lang_features: str = "pooled"
    lang_film_all: bool = False
    image_keypoints: int = 0
    keypoint_stage: int = 1
    state_dropout: float = 0.0
    aux_target_weight: float = 0.0
    ar_input_noise: float = 0.0
    rtc_train_max: int = 0
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    horizon: int = 8
    action_dim: int = 4
    state_dim: int = 7
    n_bins: int = 256
    flow_time_dist: str = "beta"
    param_dtype: str = "float16"

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.cnn_channels = tuple(int(c) for c in self.cnn_channels)
        try:
            head_class(self.head)
        except ValueError as err:
            raise ValueError(f"head: {err}") from None
        positive = ("image_size", "image_grid", "lang_tokens", "d_model", "n_layers", "n_heads",
                    "mlp_ratio", "horizon", "action_dim", "state_dim")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.cameras:
            raise ValueError("cameras must name at least one camera key")
        if not self.cnn_channels or min(self.cnn_channels) <= 0:
            raise ValueError(f"cnn_channels must be positive ints, got {self.cnn_channels}")
        if self.image_size % (2 ** len(self.cnn_channels)) != 0:
            raise ValueError(f"image_size={self.image_size} must be divisible by "
                             f"2**len(cnn_channels)={2 ** len(self.cnn_channels)}")
        if self.image_size // 2 ** len(self.cnn_channels) < self.image_grid:
            raise ValueError(f"image_grid={self.image_grid} exceeds the CNN's feature map")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 2 <= self.n_bins <= 65536:
            raise ValueError(f"n_bins must be in [2, 65536], got {self.n_bins}")
        if self.flow_time_dist not in ("beta", "uniform"):
            raise ValueError(f"flow_time_dist must be 'beta' or 'uniform', got "
                             f"{self.flow_time_dist!r}")
        if self.lang_features not in LANG_FEATURES:
            raise ValueError(f"lang_features must be one of {LANG_FEATURES}, got "
                             f"{self.lang_features!r}")
        if self.lang_film_all and not self.lang_film:
            raise ValueError("lang_film_all needs lang_film=True")
        if self.image_keypoints < 0:
            raise ValueError(f"image_keypoints must be >= 0, got {self.image_keypoints}")
        if not 0 <= self.keypoint_stage < len(self.cnn_channels):
            raise ValueError(f"keypoint_stage must index cnn_channels (0..."
                             f"{len(self.cnn_channels) - 1}), got {self.keypoint_stage}")
        if not 0.0 <= self.state_dropout <= 1.0:
            raise ValueError(f"state_dropout must be in [0, 1], got {self.state_dropout}")
        if not 0.0 <= self.ar_input_noise < 1.0:
            raise ValueError(f"ar_input_noise must be in [0, 1), got {self.ar_input_noise}")
        if not isinstance(self.rtc_train_max, int) or not 0 <= self.rtc_train_max < self.horizon:
            raise ValueError(f"rtc_train_max must be an int in [0, horizon={self.horizon}), got "
                             f"{self.rtc_train_max!r}")
        if self.rtc_train_max and self.head != "oft":
            raise ValueError(f"rtc_train_max (training-time RTC) is implemented for the oft head "
                             f"only, not {self.head!r}")
        if self.aux_target_weight < 0:
            raise ValueError(f"aux_target_weight must be >= 0, got {self.aux_target_weight}")
        if self.param_dtype not in ("float16", "float32"):
            raise ValueError(f"param_dtype must be 'float16' or 'float32', got "
                             f"{self.param_dtype!r}")

    @property
    def lang_cache_tokens(self) -> int | None:
        """Word-piece positions per cached instruction (``None``: pooled sentence embedding)."""
        return self.lang_tokens if self.lang_features == "tokens" else None

    @property
    def n_image_tokens(self) -> int:
        """Image tokens over all cameras."""
        return len(self.cameras) * (self.image_grid ** 2 + self.image_keypoints)

    @property
    def prefix_len(self) -> int:
        """Observation prefix length: image tokens, language tokens, one state token."""
        return self.n_image_tokens + self.lang_tokens + 1

    @property
    def n_action_tokens(self) -> int:
        """Action tokens of one chunk for the token heads (H x D)."""
        return self.horizon * self.action_dim

    @property
    def bos_id(self) -> int:
        """Input id of the AR head's begin-of-chunk token (one past the bins)."""
        return self.n_bins

    @property
    def mask_id(self) -> int:
        """Input id of the diffusion head's ``[MASK]`` token (one past the bins)."""
        return self.n_bins

    @property
    def max_positions(self) -> int:
        """Length of the learned position table: prefix plus the longest action sequence."""
        return self.prefix_len + self.n_action_tokens + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields."""
        out = dataclasses.asdict(self)
        out["cameras"] = list(self.cameras)
        out["cnn_channels"] = list(self.cnn_channels)
        return out

    def to_json(self) -> str:
        """The config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLAConfig:
        """Build a config from a dict, rejecting unknown keys by name.

        Raises:
            ValueError: If a key is not a field of ``VLAConfig`` or a value is invalid.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        # Checkpoints written before these switches existed were built without them.
        data = {"lang_norm": False, "lang_film": False, "lang_features": "pooled",
                "lang_film_all": False, "image_keypoints": 0, "state_dropout": 0.0,
                "aux_target_weight": 0.0, "ar_input_noise": 0.0, "rtc_train_max": 0,
                **data}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VLAConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "tiny": {"image_size": 32, "cnn_channels": (8, 16), "image_grid": 2, "d_model": 32,
             "n_layers": 2, "n_heads": 2, "mlp_ratio": 2, "horizon": 4},
    "gpu": {"image_size": 128, "cnn_channels": (32, 64, 128, 192, 256), "image_grid": 4,
            "lang_tokens": 2, "d_model": 384, "n_layers": 8, "n_heads": 6, "horizon": 8},
}


def preset(name: str, **overrides: Any) -> VLAConfig:
    """A named size (``cpu`` default, ``tiny`` for tests, ``gpu``) with field overrides.

    Raises:
        ValueError: If ``name`` is not a known preset.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return VLAConfig(**{**PRESETS[name], **overrides})


def parse_overrides(items: list[str]) -> dict:
    """``["lang_tokens=16", "lang_features=tokens"]`` -> config overrides (JSON or plain text).

    Raises:
        ValueError: If an item has no ``=``.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
