from detectron2.utils.registry import Registry


class NamedRegistry(Registry):
    """A detectron2 Registry whose entries may be registered under a name other than
    ``obj.__name__`` (evaluator types, mapper names)."""

    def register_as(self, name: str, obj=None):
        if obj is not None:
            self._do_register(name, obj)
            return obj

        def decorator(fn):
            self._do_register(name, fn)
            return fn

        return decorator

    def names(self):
        return sorted(name for name, _ in self)
