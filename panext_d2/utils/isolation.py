"""Running a measurement in a fresh interpreter, so that its memory peak and allocator state
are its own."""
import multiprocessing


def _call(fn, args, kwargs):
    return fn(*args, **kwargs)


def run_isolated(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fresh spawned interpreter, so that its memory peak and
    allocator state are its own. ``fn`` and its arguments must be picklable."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_call, (fn, args, kwargs))
