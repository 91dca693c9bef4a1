"""A training step's forward, loss and backward recorded once as a CUDA graph, then replayed.

A ResNet-20 step is a few hundred small kernels, so the GPU mostly waits for Python; ``torch.compile``'s
graphs leave the loss and autograd in between. Recording the whole step makes it one launch
(https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture). The optimizer step, clipping,
EMA and logging stay eager; the first steps run eagerly before recording and none is run twice, so the
steps are mathematically the eager ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch

log = logging.getLogger(__name__)

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


class Replayable(Protocol):
    def replay(self) -> None: ...


# (step_fn, static_x, static_y, stream) -> (graph, static outputs); recording runs no kernels.
Recorder = Callable[[StepFn, torch.Tensor, torch.Tensor, Any], tuple[Replayable, tuple[torch.Tensor, ...]]]


def record_cuda_graph(
    step_fn: StepFn, x: torch.Tensor, y: torch.Tensor, stream: torch.cuda.Stream
) -> tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...]]:
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        outputs = step_fn(x, y)
    return graph, outputs


class CapturedTrainStep:
    """Runs ``step_fn(x, y)`` (forward, loss, ``backward()``; returns detached tensors) as a CUDA graph.

    Args:
        step_fn: one training step without the optimizer; must not synchronise with the host.
        parameters: the parameters whose gradients the step computes. Read once, at the first step
            (walking a module tree on every step costs a small net a noticeable share of its step);
            which of them train (``requires_grad``) is re-checked on every call.
        warmup_steps: eager steps before recording (PyTorch asks for a few; 3 as in its examples).
        recorder: how a step is recorded; ``record_cuda_graph`` except in tests without a GPU.

    Returns from a call the step's outputs; after recording these are the graph's static output
    tensors, overwritten by the next replay (clone what must outlive the step).
    """

    def __init__(
        self,
        step_fn: StepFn,
        parameters: Callable[[], Iterable[torch.nn.Parameter]],
        warmup_steps: int = 3,
        recorder: Recorder = record_cuda_graph,
    ) -> None:
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1 (eager steps before recording), got {warmup_steps}")
        self.step_fn = step_fn
        self.parameters = parameters
        self.warmup_steps = int(warmup_steps)
        self.recorder = recorder
        self.recordings = (
            0  # graphs recorded so far (more than one means shapes or trainable parameters changed)
        )
        self.disabled_reason: str | None = None  # set if recording failed: every later step runs eagerly
        self._signature: tuple[Any, ...] | None = None
        self._graph: Replayable | None = None
        self._eager_steps = 0
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None
        self._outputs: tuple[torch.Tensor, ...] = ()
        self._stream: Any = None
        self._params: list[torch.nn.Parameter] | None = None

    @property
    def recorded(self) -> bool:
        return self._graph is not None

    def _all_parameters(self) -> list[torch.nn.Parameter]:
        if self._params is None:
            self._params = list(self.parameters())
        return self._params

    def _current_signature(self, x: torch.Tensor, y: torch.Tensor) -> tuple[Any, ...]:
        def spec(t: torch.Tensor) -> tuple[Any, ...]:
            return (tuple(t.shape), t.dtype, t.stride(), t.device)

        return (spec(x), spec(y), tuple(p.requires_grad for p in self._all_parameters()))

    def _zero_grad(self) -> None:
        for p in self._all_parameters():
            p.grad = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.disabled_reason is not None:
            self._zero_grad()
            return self.step_fn(x, y)
        signature = self._current_signature(x, y)
        if signature != self._signature:
            if self._signature is not None:
                log.info("training step changed shape or trainable parameters: recording a new CUDA graph")
            self._signature, self._graph, self._eager_steps, self._static, self._outputs = (
                signature,
                None,
                0,
                None,
                (),
            )
        if self._graph is None:
            # Gradients set to None: the eager steps start clean, and a recorded backward allocates its
            # .grad tensors from the graph's own memory, where every replay rewrites them.
            self._zero_grad()
            if self._eager_steps < self.warmup_steps:
                self._eager_steps += 1
                return self._on_side_stream(x, y)
            if not self._record(x, y):
                return self.step_fn(x, y)
        assert self._static is not None
        self._static[0].copy_(x)
        self._static[1].copy_(y)
        self._graph.replay()
        return self._outputs

    def _side_stream(self, device: torch.device) -> Any:
        if self._stream is None and device.type == "cuda":
            self._stream = torch.cuda.Stream(device)
        return self._stream

    def _on_side_stream(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """An eager step on the stream that records, as PyTorch's capture recipe asks (no-op on CPU)."""
        stream = self._side_stream(x.device)
        if stream is None:
            return self.step_fn(x, y)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):
            outputs = self.step_fn(x, y)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        return outputs

    def _record(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        static_x = torch.empty_like(x).copy_(x)  # empty_like keeps x's memory format (channels_last)
        static_y = torch.empty_like(y).copy_(y)
        try:
            graph, outputs = self.recorder(self.step_fn, static_x, static_y, self._side_stream(x.device))
        except Exception as err:  # noqa: BLE001 - any recording failure falls back to eager steps
            self.disabled_reason = f"{type(err).__name__}: {err}"
            log.warning(
                "recording the training step as a CUDA graph failed (%s); training continues eagerly "
                "(set module.cuda_graph=false to skip the attempt)",
                self.disabled_reason,
            )
            self._zero_grad()
            return False
        self._graph, self._static, self._outputs = graph, (static_x, static_y), tuple(outputs)
        self.recordings += 1
        return True
