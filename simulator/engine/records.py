"""The kernel's tuples as records passed by reference.

Python builds the engine's inputs and buffers as NamedTuples of arrays and numbers
(``kernel.Dynamics``, ``lowering.Rules``, ``kernel.Population``, ...): easy to build, read and
``_replace``. Inside the kernel they would be costly to hand around: numba passes a tuple by
value, as every field of every array, so each call of a helper that takes ``Population``
(25 arrays) reference-counts 25 arrays on entry and again on exit, and its code spells out
every field at every call site, which is most of what the compiler has to chew through.

``as_record(values)``, called in jitted code, copies such a tuple's fields into a record (a
numba ``StructRef``) once per kernel call; a record is passed as one pointer and its arrays
are the tuple's own (writes go to the same memory). Helpers read its fields by the same names
(``pop.cells``), so they work unchanged on either form.
"""

from numba import types
from numba.experimental import structref
from numba.extending import overload


@structref.register
class RecordType(types.StructRef):
    """A record with the fields (names and types) of one NamedTuple type."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


def as_record(values):
    """The record of the NamedTuple ``values`` (only in jitted code)."""
    raise TypeError("as_record is only available in jitted code")


@overload(as_record)
def _as_record(values):
    if not isinstance(values, types.BaseNamedTuple):
        return None
    record_type = RecordType(list(zip(values.fields, values.types)))
    # One assignment per field, spelled out: the field names are known only here.
    lines = ["def build(values):", "    record = new(record_type)"]
    lines += [f"    record.{name} = values.{name}" for name in values.fields]
    lines.append("    return record")
    namespace = {"new": structref.new, "record_type": record_type}
    exec("\n".join(lines), namespace)  # noqa: S102 - code built from the tuple's field names
    return namespace["build"]
