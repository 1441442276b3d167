"""The fast path of ``VLAModel.predict_chunk(..., fast=True)``: a static KV cache, CUDA graphs.

Usage: ``actions, stats = model.predict_chunk(obs, "jacobi", fast=True)`` (same answer as
without ``fast``; ``stats["path"]`` says how it ran)

The eager path launches every kernel of every pass from Python; at this model size that launch
overhead, not arithmetic, sets the latency on a GPU (flat from batch 1 to 64). The fast path
keeps the observation inputs and a :class:`~vla.static_cache.StaticCache` in fixed buffers per
batch shape (an *engine*) and, on CUDA, replays captured graphs:

* **whole**: decoders with a fixed schedule run as one graph from the raw uint8 images to the
  unnormalized chunk: ``oft`` (one pass over [prefix | queries], the training layout, instead
  of a prefix pass and a query pass), ``flow`` (K Euler or Heun steps; the initial noise is
  drawn outside the graph exactly as the eager sampler draws it, then copied in) and greedy
  ``ar`` without options (H x D single-token passes, unrolled);
* **stepped**: everything else (Jacobi with or without early exit, masked diffusion, AR with
  sampling or constraints, real-time-chunking prefixes) keeps its Python loop and its
  data-dependent stopping; the prefix encoding is one graph and every backbone pass replays
  the graph captured for its shape (tokens, append or not, causal or not). For the AR head at
  batches up to :data:`HOST_LOOP_MAX_BATCH` the loop itself runs on the host: each pass is one
  graph from token ids to logits, copied back (:class:`HostCausalLM`).

On CPU the same code runs without capture, so CI checks that the static-cache path gives the
eager path's answers. Flow with a real-time-chunking prefix needs autograd through the
backbone (RTC guidance) and runs eagerly (``stats["path"] == "eager"``). Greedy outputs equal
the eager path's tokens (attention over the padded static buffer sums in another order, so
continuous outputs agree to float rounding, not bit for bit; see ``tests/vla/test_fast.py``
and ``robodecode bench vla --device cuda``). Engines are not thread-safe: one caller at a time
(:class:`FastPath` holds a lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch

from vla.observation import Observation, RawObservation
from vla.static_cache import StaticCache

if TYPE_CHECKING:
    from vla.model import VLAModel

HOST_LOOP_MAX_BATCH = 16
"""Largest (padded) batch whose AR-head decode loop runs on the host (:class:`HostCausalLM`);
larger batches keep it on the device, where their logits are."""

WHOLE_SETTINGS = {"oft": frozenset(), "flow": frozenset({"steps", "solver", "generator"}),
                  "ar": frozenset()}
"""Decoders run as one whole graph, and the settings that keep their schedule fixed."""


def capture(fn: Callable[[], Any]) -> tuple[torch.cuda.CUDAGraph, Any]:
    """Run ``fn`` once on a side stream (warm-up), then capture it; returns (graph, outputs).

    ``fn`` must read and write only tensors that outlive the graph (static buffers).
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


def capture_pass(cache: StaticCache, fn: Callable[[], Any]) -> tuple[torch.cuda.CUDAGraph, Any]:
    """Capture ``fn``, which runs on ``cache``; a replay writes at the cache's ``start`` then.

    The warm-up run moves the cache (its device copy too); both are put back afterwards, and the
    backbone runs its blocks itself while capturing (``cache.capturing``).
    """
    length = cache.length

    def run() -> Any:
        cache.length = length  # warm-up and capture both start where we are
        return fn()

    cache.capturing = True
    try:
        return capture(run)
    finally:
        cache.capturing = False
        cache.seek(length)


class PassGraphs:
    """One captured backbone pass per shape, replayed for every pass on a static cache.

    The backbone calls it (``cache.runner``) instead of running its blocks; a miss captures.
    """

    def __init__(self, backbone: torch.nn.Module, cache: StaticCache) -> None:
        self.backbone, self.cache = backbone, cache
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor, *, append: bool, causal: bool) -> torch.Tensor:
        """The backbone's final states of ``x`` (B, T, d); appends advance the cache."""
        cache, t = self.cache, x.shape[1]
        key = (tuple(x.shape), x.dtype, append, causal)
        if key not in self.graphs:
            static_x = x.clone()
            graph, out = capture_pass(cache, lambda: self.backbone.run(
                static_x, cache, append=append, causal=causal))
            self.graphs[key] = (graph, static_x, out)
        graph, static_x, out = self.graphs[key]
        static_x.copy_(x)
        graph.replay()
        if append:
            cache.length += t
        return out.clone()


class HostCausalLM:
    """The AR head as a causal LM whose decode loop runs on the host (fast path on CUDA).

    Input ids come from the CPU and logits go back to it; the pass (token embedding, backbone,
    output layer) is one captured graph per input length. A decoder's bookkeeping (argmax,
    acceptance, crops, early exit) then costs host microseconds instead of kernel launches and
    device syncs. Greedy tokens are unchanged: the logits are the device's own, and argmax picks
    the same (first maximal) index on either side.
    """

    device = torch.device("cpu")

    def __init__(self, model: VLAModel, cache: StaticCache, graphs: bool = True) -> None:
        self.model, self.cache, self.use_graphs = model, cache, graphs
        self.config = SimpleNamespace(vocab_size=model.config.n_bins)
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def _pass(self, ids: torch.Tensor, use_cache: bool) -> torch.Tensor:
        lm = self.model.head.causal_lm(self.model)
        return lm(input_ids=ids, cache=self.cache, use_cache=use_cache).logits

    def __call__(self, input_ids: torch.Tensor | None = None, cache: Any = None,
                 past_key_values: Any = None, use_cache: bool = True, **_: Any) -> Any:
        """One pass over ``input_ids`` (B, T) after the cache (Hugging Face convention)."""
        from vla.heads.ar import CausalLMOutput

        kv = cache if cache is not None else past_key_values
        if input_ids is None or kv is not self.cache:
            raise ValueError("HostCausalLM takes input_ids and runs on its engine's cache")
        t = input_ids.shape[1]
        self.cache.check_room(t)
        if not self.use_graphs:  # the same pass, run directly (CPU tests)
            out = self._pass(input_ids.to(self.cache.start.device), use_cache)
            return CausalLMOutput(logits=out.cpu(), cache=self.cache if use_cache else None)
        if (t, use_cache) not in self.graphs:
            ids = torch.zeros(input_ids.shape, dtype=torch.long, device=self.cache.start.device)
            graph, out = capture_pass(self.cache, lambda: self._pass(ids, use_cache))
            self.graphs[(t, use_cache)] = (graph, ids, out)
        graph, ids, out = self.graphs[(t, use_cache)]
        ids.copy_(input_ids)
        graph.replay()
        if use_cache:
            self.cache.length += t
        return CausalLMOutput(logits=out.cpu(), cache=self.cache if use_cache else None)


class Engine:
    """Static buffers, cache and graphs of one input shape (batch, cameras, language)."""

    def __init__(self, model: VLAModel, raw: RawObservation) -> None:
        cfg, dev = model.config, model.device
        self.model = model
        self.batch = raw.batch_size
        self.graphs = dev.type == "cuda"
        self.images = [torch.zeros(img.shape, dtype=torch.uint8, device=dev)
                       for img in raw.images]
        self.state = torch.zeros(raw.state.shape, dtype=torch.float32, device=dev)
        self.lang = torch.zeros(raw.lang.shape, dtype=torch.float32, device=dev)
        self.noise = torch.zeros(self.batch, cfg.horizon, cfg.action_dim, dtype=model.dtype,
                                 device=dev)
        self.cache = StaticCache.for_model(cfg, self.batch, dev, model.dtype)
        self.cache.runner = PassGraphs(model.backbone, self.cache) if self.graphs else None
        self.host_lm = host_lm_for(model, self.cache, self.batch)
        self.prefix_graph: tuple[torch.cuda.CUDAGraph, Any] | None = None
        self.whole: dict[tuple, tuple[Any, torch.Tensor, int, dict[str, Any]]] = {}

    def load(self, raw: RawObservation) -> None:
        """Copy the observation into the static input buffers."""
        for buf, img in zip(self.images, raw.images, strict=True):
            buf.copy_(img, non_blocking=True)
        self.state.copy_(raw.state, non_blocking=True)
        self.lang.copy_(raw.lang, non_blocking=True)

    def observation(self) -> Observation:
        """The static inputs as the model's :class:`~vla.model.Observation` (preprocessed)."""
        enc = self.model.image_enc
        return Observation(images=[enc.preprocess(img) for img in self.images],
                           state=self.state, lang=self.lang)

    def _encode_prefix(self) -> None:
        self.cache.seek(0)
        self.model.backbone.run(self.model.prefix_tokens(self.observation()), self.cache,
                                append=True, causal=False)

    def encode_prefix(self) -> None:
        """Fill the cache with the observation prefix (one graph on CUDA)."""
        if not self.graphs:
            self._encode_prefix()
            return
        if self.prefix_graph is None:
            self.prefix_graph = capture_pass(self.cache, self._encode_prefix)
        self.prefix_graph[0].replay()
        self.cache.length = self.model.config.prefix_len

    def decode_whole(self, decoder: str, kwargs: dict[str, Any], rows: int
                     ) -> tuple[torch.Tensor, int, dict[str, Any]]:
        """Prefix, decode and unnormalization as one graph (see :data:`WHOLE_SETTINGS`).

        ``rows``: the caller's batch (the engine's may be padded); flow draws its noise for
        those rows exactly as the eager sampler does and repeats the last for the padding.
        """
        model = self.model
        generator = kwargs.pop("generator", None)
        key = (decoder, *sorted(kwargs.items()))  # the schedule: steps, solver
        if decoder == "flow":  # the draw flow_sample makes when it is given no x0
            noise = torch.randn((rows, *self.noise.shape[1:]), generator=generator,
                                dtype=model.dtype, device=model.device)
            self.noise[:rows].copy_(noise)
            self.noise[rows:].copy_(noise[-1:].expand(self.batch - rows, -1, -1))
            kwargs["x0"] = self.noise
        if key not in self.whole:
            info: dict[str, Any] = {}

            def run() -> torch.Tensor:
                if decoder == "oft":  # one pass over [prefix | queries], no cache needed
                    info["nfe"], info["stats"] = 1, {}
                    z = model.head.decode_one_pass(model, model.prefix_tokens(self.observation()))
                    return model.tokenizer.unnormalize(z.float())
                self._encode_prefix()
                if decoder == "ar":
                    z, info["nfe"], info["stats"] = greedy_ar(model, self.cache, self.batch)
                else:
                    z, info["nfe"], info["stats"] = model.head.decode(
                        model, self.cache, self.batch, decoder, **kwargs)
                return model.tokenizer.unnormalize(z.float())

            if not self.graphs:
                return run(), info["nfe"], info["stats"]
            graph, out = capture_pass(self.cache, run)
            self.whole[key] = (graph, out, info["nfe"], info["stats"])
        graph, out, nfe, stats = self.whole[key]
        graph.replay()
        return out, nfe, dict(stats)


def host_lm_for(model: VLAModel, cache: StaticCache, batch: int) -> HostCausalLM | None:
    """The host-loop LM of an AR-head engine on CUDA up to :data:`HOST_LOOP_MAX_BATCH` rows."""
    if model.device.type == "cuda" and model.config.head == "ar" and batch <= HOST_LOOP_MAX_BATCH:
        return HostCausalLM(model, cache)
    return None


def greedy_ar(model: VLAModel, cache: StaticCache, batch: int
              ) -> tuple[torch.Tensor, int, dict[str, Any]]:
    """Greedy AR over the prefix in ``cache``, unrolled, capturable.

    What :func:`decoding.autoregressive` computes with its defaults, without its per-step host
    checks (a captured graph cannot sync with the host).
    """
    head, n = model.head, model.config.n_action_tokens
    lm = head.causal_lm(model)
    token = head.bos_ids(batch, model.device)
    out = []
    for _ in range(n):
        token = lm(input_ids=token, cache=cache).logits[:, -1].argmax(-1, keepdim=True)
        out.append(token)
    return head.to_chunk(model, torch.cat(out, dim=1), check=False), n, {"steps": n}


def eager_reason(decoder: str, kwargs: dict[str, Any]) -> str | None:
    """Why ``decoder`` with ``kwargs`` must run eagerly, or ``None`` if the fast path takes it."""
    if decoder == "flow" and "prefix" in kwargs:
        return "flow with a real-time-chunking prefix (guidance needs autograd)"
    return None


class FastPath:
    """The engines of one model, one per input shape, and the choice of whole or stepped runs.

    On CUDA the batch is padded up to a power of two (repeating the last row) so that a server
    whose batches vary in size captures a handful of shapes, not one per size; padded rows are
    dropped from the answer. Decoders that draw from a generator per row (diffusion with a
    generator) are not padded, since a padded draw would differ from the eager one.
    """

    def __init__(self, model: VLAModel) -> None:
        self.model = model
        self.engines: dict[tuple, Engine] = {}
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> None:
        """A copied model builds its own engines (graphs cannot be copied)."""
        return None

    def engine(self, raw: RawObservation) -> Engine:
        """The engine of ``raw``'s shapes (built on first use)."""
        key = (tuple(tuple(i.shape) for i in raw.images), tuple(raw.state.shape),
               tuple(raw.lang.shape), self.model.device, self.model.dtype)
        if key not in self.engines:
            self.engines[key] = Engine(self.model, raw)
        return self.engines[key]

    def decode(self, raw: RawObservation, decoder: str, kwargs: dict[str, Any]
               ) -> tuple[torch.Tensor, int, dict[str, Any], dict[str, str]]:
        """Decode ``raw`` (checked inputs on the host) with the fast path.

        Returns:
            ``(actions (B, H, D) float32 on the device in env units, nfe, decoder stats,
            {"path": "whole-graph" | "stepped-graphs" | "static-cache"})``.
        """
        batch = raw.batch_size
        if self.model.device.type == "cuda" and (decoder == "flow" or "generator" not in kwargs):
            raw = pad_batch(raw, 1 << (batch - 1).bit_length())
        with self.lock:
            eng = self.engine(raw)
            eng.load(raw)
            kwargs = dict(kwargs)
            if decoder in WHOLE_SETTINGS and set(kwargs) <= WHOLE_SETTINGS[decoder]:
                out, nfe, stats = eng.decode_whole(decoder, kwargs, batch)
                path = "whole-graph" if eng.graphs else "static-cache"
            else:
                eng.encode_prefix()
                if eng.host_lm is not None:
                    kwargs["lm"] = eng.host_lm
                z, nfe, stats = self.model.head.decode(self.model, eng.cache, eng.batch,
                                                       decoder, **kwargs)
                out = self.model.tokenizer.unnormalize(z.float())
                path = "stepped-graphs" if eng.graphs else "static-cache"
            return out[:batch].clone(), nfe, stats, {"path": path}


def pad_batch(raw: RawObservation, size: int) -> RawObservation:
    """``raw`` with its last row repeated up to ``size`` rows."""
    extra = size - raw.batch_size
    if extra <= 0:
        return raw

    def pad(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x[-1:].expand(extra, *x.shape[1:])])

    return RawObservation([pad(i) for i in raw.images], pad(raw.state), pad(raw.lang))
