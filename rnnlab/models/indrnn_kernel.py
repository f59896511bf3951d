"""The IndRNN recurrence as one compiled C++ loop (CPU, float32/float64), built on first use with
`torch.utils.cpp_extension.load_inline` and cached per torch version under torch's extension dir
(`TORCH_EXTENSIONS_DIR` if set, else ~/.cache/torch_extensions). Nothing is compiled at import.

Concurrent processes build it once, under a lock of our own: an flock, which the OS releases when its holder dies,
unlike torch's lock file, which a process killed mid-build leaves behind for the next one to wait on forever. A
process waits at most `RNNLAB_INDRNN_BUILD_TIMEOUT` seconds (default 300) for another's build, then the caller
falls back to the Python loop. The `ninja` binary comes from the installed `ninja` package when it is not on PATH.

Forward over a contiguous (B, T, H) drive: h_t = relu(drive_t + u * h_{t-1}), one batch row per task.
Backward, per batch row from t = T-1 down to 0: dpre_t = (dL/dh_t + u * dpre_{t+1}) * [h_t > 0],
dL/du += dpre_t * h_{t-1} (a (B, H) buffer summed over B at the end: no races, no atomics), dL/dh0 = u * dpre_0.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import logging
import os
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

NAME = "rnnlab_indrnn"
BUILD_TIMEOUT_S = 300.0  # the default wait for another process's build (RNNLAB_INDRNN_BUILD_TIMEOUT)
LOCK_POLL_S = 0.2
GRAIN_ELEMENTS = 32768  # elements of (T, H) work per parallel task: below this, threading costs more than it saves

# Only the ATen headers it uses and the op registry, not torch/extension.h (pybind, the C++ frontend): the first
# build takes ~15 s instead of ~50 s. The ops are called as torch.ops.rnnlab_indrnn.recurrence_{forward,backward}.
SOURCE = r"""
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

namespace {

int64_t grain(int64_t T, int64_t H) { return std::max<int64_t>(1, GRAIN_ELEMENTS / std::max<int64_t>(1, T * H)); }

template <typename scalar_t>
void forward_rows(const scalar_t* __restrict__ drive, const scalar_t* __restrict__ u,
                  const scalar_t* __restrict__ h0, scalar_t* __restrict__ h, int64_t b0, int64_t b1,
                  int64_t T, int64_t H) {
  for (int64_t b = b0; b < b1; ++b) {
    const scalar_t* prev = h0 + b * H;
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t* a = drive + (b * T + t) * H;
      scalar_t* out = h + (b * T + t) * H;
      for (int64_t j = 0; j < H; ++j) {
        const scalar_t pre = a[j] + u[j] * prev[j];
        out[j] = pre < scalar_t(0) ? scalar_t(0) : pre;  // relu that keeps NaN, as torch's
      }
      prev = out;
    }
  }
}

template <typename scalar_t>
void backward_rows(const scalar_t* __restrict__ grad_h, const scalar_t* __restrict__ h,
                   const scalar_t* __restrict__ u, const scalar_t* __restrict__ h0, scalar_t* __restrict__ grad_pre,
                   scalar_t* __restrict__ grad_u_BH, scalar_t* __restrict__ grad_h0, int64_t b0, int64_t b1, int64_t T,
                   int64_t H) {
  for (int64_t b = b0; b < b1; ++b) {
    scalar_t* gu = grad_u_BH + b * H;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t row = (b * T + t) * H;
      const scalar_t* prev = t > 0 ? h + row - H : h0 + b * H;
      const scalar_t* carry = grad_pre + row + H;  // dL/dpre_{t+1}, read only when t < T - 1
      scalar_t* pre = grad_pre + row;
      if (t == T - 1) {
        for (int64_t j = 0; j < H; ++j) {
          const scalar_t d = grad_h[row + j] * scalar_t(h[row + j] > scalar_t(0));
          pre[j] = d;
          gu[j] += d * prev[j];
        }
      } else {
        for (int64_t j = 0; j < H; ++j) {
          const scalar_t g = grad_h[row + j] + u[j] * carry[j];
          const scalar_t d = g * scalar_t(h[row + j] > scalar_t(0));  // relu' as 0/1, as sign(h) in Python
          pre[j] = d;
          gu[j] += d * prev[j];
        }
      }
    }
    const scalar_t* first = grad_pre + b * T * H;
    for (int64_t j = 0; j < H; ++j) grad_h0[b * H + j] = u[j] * first[j];
  }
}

}  // namespace

void check_shapes(const at::Tensor& h, const at::Tensor& recurrent, const at::Tensor& h0) {
  TORCH_CHECK(h.dim() == 3 && recurrent.dim() == 1 && h0.dim() == 2,
              "IndRNN recurrence: expected (B, T, H), (H), (B, H)");
  TORCH_CHECK(recurrent.size(0) == h.size(2) && h0.size(0) == h.size(0) && h0.size(1) == h.size(2),
              "IndRNN recurrence: shapes ", h.sizes(), ", ", recurrent.sizes(), ", ", h0.sizes(), " disagree");
  TORCH_CHECK(recurrent.scalar_type() == h.scalar_type() && h0.scalar_type() == h.scalar_type(),
              "IndRNN recurrence: mixed dtypes");
}

at::Tensor recurrence_forward(at::Tensor drive, at::Tensor recurrent, at::Tensor h0) {
  check_shapes(drive, recurrent, h0);
  drive = drive.contiguous();
  recurrent = recurrent.contiguous();
  h0 = h0.contiguous();
  const int64_t B = drive.size(0), T = drive.size(1), H = drive.size(2);
  auto h = at::empty_like(drive);
  AT_DISPATCH_FLOATING_TYPES(drive.scalar_type(), "indrnn_forward", [&] {
    const scalar_t *a = drive.data_ptr<scalar_t>(), *u = recurrent.data_ptr<scalar_t>(), *s = h0.data_ptr<scalar_t>();
    scalar_t* out = h.data_ptr<scalar_t>();
    at::parallel_for(0, B, grain(T, H), [&](int64_t b0, int64_t b1) { forward_rows(a, u, s, out, b0, b1, T, H); });
  });
  return h;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> recurrence_backward(at::Tensor grad_h, at::Tensor h,
                                                                   at::Tensor recurrent, at::Tensor h0) {
  check_shapes(h, recurrent, h0);
  TORCH_CHECK(grad_h.sizes() == h.sizes() && grad_h.scalar_type() == h.scalar_type(), "IndRNN recurrence: grad_h");
  grad_h = grad_h.contiguous();
  h = h.contiguous();
  recurrent = recurrent.contiguous();
  h0 = h0.contiguous();
  const int64_t B = h.size(0), T = h.size(1), H = h.size(2);
  auto grad_pre = at::empty_like(h);
  auto grad_u_BH = at::zeros_like(h0);
  auto grad_h0 = at::zeros_like(h0);  // stays zero when T == 0
  if (T > 0) {
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "indrnn_backward", [&] {
      const scalar_t *g = grad_h.data_ptr<scalar_t>(), *hs = h.data_ptr<scalar_t>();
      const scalar_t *u = recurrent.data_ptr<scalar_t>(), *s = h0.data_ptr<scalar_t>();
      scalar_t *gp = grad_pre.data_ptr<scalar_t>(), *gu = grad_u_BH.data_ptr<scalar_t>();
      scalar_t* gs = grad_h0.data_ptr<scalar_t>();
      at::parallel_for(0, B, grain(T, H), [&](int64_t b0, int64_t b1) {
        backward_rows(g, hs, u, s, gp, gu, gs, b0, b1, T, H);
      });
    });
  }
  return {grad_pre, grad_u_BH.sum(0), grad_h0};
}

TORCH_LIBRARY(rnnlab_indrnn, m) {
  m.def("recurrence_forward(Tensor drive, Tensor recurrent, Tensor h0) -> Tensor");
  m.def("recurrence_backward(Tensor grad_h, Tensor h, Tensor recurrent, Tensor h0) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rnnlab_indrnn, CPU, m) {  // CPU only: other devices get the dispatcher's error
  m.impl("recurrence_forward", &recurrence_forward);
  m.impl("recurrence_backward", &recurrence_backward);
}
""".replace("GRAIN_ELEMENTS", str(GRAIN_ELEMENTS))

_module = None
_failed: str | None = None


def build_directory() -> Path:
    """Where the kernel is built and cached: one folder per torch version and Python (the binary depends on both)."""
    import torch

    base = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(base, f"{NAME}-torch{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}")


def build_timeout() -> float:
    raw = os.environ.get("RNNLAB_INDRNN_BUILD_TIMEOUT", "").strip()
    try:
        return float(raw) if raw else BUILD_TIMEOUT_S
    except ValueError:
        raise ValueError(f"RNNLAB_INDRNN_BUILD_TIMEOUT={raw!r}: expected a number of seconds") from None


@contextlib.contextmanager
def build_lock(folder: Path, timeout: float):
    """Hold `<folder>.lock` (flock) while building or loading; TimeoutError after `timeout` s of waiting."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"another process has been building it for over {timeout:g} s (lock "
                        f"{lock.name}; RNNLAB_INDRNN_BUILD_TIMEOUT)"
                    ) from None
                time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def clear_stale_build(folder: Path) -> None:
    """Under our lock no other rnnlab process is building, so a torch `lock` file in the folder was left by a
    killed build: move the folder aside (a compiler it left running keeps writing there) and start afresh."""
    if not (folder / "lock").exists():
        return
    aside = folder.with_name(f"{folder.name}.stale-{os.getpid()}")
    os.replace(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)
    log.info("IndRNN kernel: a build interrupted by a killed process was discarded (%s)", folder)


def ninja_dir() -> str | None:
    """The folder of the installed `ninja` package's binary, when `ninja` is not on PATH (a venv's bin/ often is
    not, e.g. under Ray or when the venv's python is called by path); None when nothing needs adding."""
    if shutil.which("ninja"):
        return None
    try:
        files = importlib.metadata.distribution("ninja").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name in ("ninja", "ninja.exe") and file.parent.name in ("bin", "Scripts"):
            path = Path(file.locate())
            if path.is_file():
                return str(path.parent)
    return None


@contextlib.contextmanager
def ninja_on_path():
    """PATH with the `ninja` package's binary on it while torch's loader runs (it calls `ninja` by name)."""
    found, saved = ninja_dir(), os.environ.get("PATH")
    if found is not None:
        os.environ["PATH"] = found + os.pathsep + (saved or "")
    try:
        yield
    finally:
        if found is not None:
            if saved is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = saved


def build(folder: Path) -> None:
    from torch.utils.cpp_extension import load_inline

    folder.mkdir(parents=True, exist_ok=True)
    load_inline(
        name=NAME,
        cpp_sources=SOURCE,
        build_directory=str(folder),
        is_python_module=False,  # a shared library of registered ops, loaded into torch.ops
        no_implicit_headers=True,
        # OpenMP drives at::parallel_for (inlined from torch's headers); the loaded libgomp is torch's own.
        # -fno-trapping-math lets GCC vectorise the relu masks (compares become blends). No -march=native:
        # the cached build may be shared by machines with different CPUs.
        extra_cflags=["-O3", "-fno-trapping-math", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
    )


def load():
    """The compiled ops (`torch.ops.rnnlab_indrnn`), built or found in the cache on the first call; None if that
    fails or waits too long for another process's build (the reason in `_failed`; no second attempt here)."""
    global _module, _failed
    if _module is None and _failed is None:
        try:
            import torch

            folder = build_directory()
            with build_lock(folder, build_timeout()), ninja_on_path():
                clear_stale_build(folder)
                build(folder)
            _module = torch.ops.rnnlab_indrnn
        except Exception as err:  # no compiler, no ninja, a read-only cache dir, a build that takes too long...
            _failed = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[-1]}"
    return _module
