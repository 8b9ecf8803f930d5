"""Table features (``ofp_table_features`` and its properties, specification 1.3.5, 7.3.5.18),
carried by the table-features multipart request (to set them) and reply.

Each property is ``type``, ``length`` (without padding), its content, then zeros to a
multiple of 8.  A table-features entry or property whose length is short, past what is left
or (for lists of fixed-size elements) not a whole number of them is ``OFPTFFC_BAD_LEN``; a
property type the specification does not define is ``OFPTFFC_BAD_TYPE``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .ofp_const import (
    OFP_MAX_TABLE_NAME_LEN,
    ErrorType,
    OxmClass,
    TableFeaturePropType,
    TableFeaturesFailedCode,
)
from .port_desc import fixed_string, unpad
from .wire import ErrorCode, Reader, zeros_to_8

TABLE_FEATURES = struct.Struct("!HB5x32sQQII")
PROP_HEADER = struct.Struct("!HH")
_ID_HEADER = struct.Struct("!HH")
_EXPERIMENTER = struct.Struct("!II")
BAD_TF_LEN: ErrorCode = (ErrorType.TABLE_FEATURES_FAILED, TableFeaturesFailedCode.BAD_LEN)

T = TableFeaturePropType
INSTRUCTION_PROPS = frozenset({T.INSTRUCTIONS, T.INSTRUCTIONS_MISS})
NEXT_TABLES_PROPS = frozenset({T.NEXT_TABLES, T.NEXT_TABLES_MISS})
ACTION_PROPS = frozenset({T.WRITE_ACTIONS, T.WRITE_ACTIONS_MISS, T.APPLY_ACTIONS,
                          T.APPLY_ACTIONS_MISS})
OXM_PROPS = frozenset({T.MATCH, T.WILDCARDS, T.WRITE_SETFIELD, T.WRITE_SETFIELD_MISS,
                       T.APPLY_SETFIELD, T.APPLY_SETFIELD_MISS})
EXPERIMENTER_PROPS = frozenset({T.EXPERIMENTER, T.EXPERIMENTER_MISS})


@dataclass(frozen=True, slots=True)
class TypeId:
    """An instruction or action named by its header (type and length) alone, as feature
    lists name them; an experimenter one carries its ID (and anything after) in ``data``."""

    type: int
    data: bytes = b""

    def encode(self) -> bytes:
        return _ID_HEADER.pack(self.type, _ID_HEADER.size + len(self.data)) + self.data


@dataclass(frozen=True, slots=True)
class OxmId:
    """An OXM field named by its 32-bit header; one of the experimenter class is followed by
    its experimenter ID."""

    header: int
    experimenter: int | None = None

    @property
    def oxm_class(self) -> int:
        return self.header >> 16

    @property
    def field(self) -> int:
        return (self.header >> 9) & 0x7F

    def encode(self) -> bytes:
        exp = b"" if self.experimenter is None else struct.pack("!I", self.experimenter)
        return struct.pack("!I", self.header) + exp


@dataclass(frozen=True, slots=True)
class TableFeatureProp:
    """One property, ``prop_type`` its ``ofp_table_feature_prop_type``; the field that
    type uses: ``ids`` (instructions, actions), ``table_ids`` (next tables), ``oxm_ids``
    (match, wildcards, set-field), or ``experimenter``/``exp_type``/``data``."""

    prop_type: int
    ids: tuple[TypeId, ...] = ()
    table_ids: tuple[int, ...] = ()
    oxm_ids: tuple[OxmId, ...] = ()
    experimenter: int = 0
    exp_type: int = 0
    data: bytes = b""

    def encode(self) -> bytes:
        t = self.prop_type
        if t in INSTRUCTION_PROPS or t in ACTION_PROPS:
            body = b"".join(i.encode() for i in self.ids)
        elif t in NEXT_TABLES_PROPS:
            body = bytes(self.table_ids)
        elif t in OXM_PROPS:
            body = b"".join(o.encode() for o in self.oxm_ids)
        elif t in EXPERIMENTER_PROPS:
            body = _EXPERIMENTER.pack(self.experimenter, self.exp_type) + self.data
        else:
            raise ValueError(f"table feature property type {t} is not OpenFlow 1.3's")
        length = PROP_HEADER.size + len(body)
        return PROP_HEADER.pack(t, length) + body + zeros_to_8(length)

    @classmethod
    def decode(cls, r: Reader) -> TableFeatureProp:
        prop_type, length = r.peek_u16(), r.peek_u16(2)
        if length < PROP_HEADER.size or length > r.remaining:
            r.fail(f"table feature property of length {length}, {r.remaining} bytes left")
        w = r.window(length)
        w.skip(PROP_HEADER.size)
        r.skip(-length % 8, "property padding")
        if prop_type in INSTRUCTION_PROPS or prop_type in ACTION_PROPS:
            ids = []
            while w.remaining:
                id_type, id_len = w.peek_u16(), w.peek_u16(2)
                if id_len < _ID_HEADER.size:
                    w.fail(f"feature id of length {id_len}")
                ids.append(TypeId(id_type, w.take(id_len)[_ID_HEADER.size:]))
            return cls(prop_type, ids=tuple(ids))
        if prop_type in NEXT_TABLES_PROPS:
            return cls(prop_type, table_ids=tuple(w.rest()))
        if prop_type in OXM_PROPS:
            oxm_ids = []
            while w.remaining:
                header = w.u32()
                exp = w.u32() if header >> 16 == OxmClass.EXPERIMENTER else None
                oxm_ids.append(OxmId(header, exp))
            return cls(prop_type, oxm_ids=tuple(oxm_ids))
        if prop_type in EXPERIMENTER_PROPS:
            experimenter, exp_type = w.unpack(_EXPERIMENTER, "experimenter property")
            return cls(prop_type, experimenter=experimenter, exp_type=exp_type, data=w.rest())
        r.fail(f"table feature property type {prop_type}",
               (ErrorType.TABLE_FEATURES_FAILED, TableFeaturesFailedCode.BAD_TYPE))


@dataclass(frozen=True, slots=True)
class TableFeatures:
    table_id: int
    name: bytes
    metadata_match: int = 0
    metadata_write: int = 0
    config: int = 0
    max_entries: int = 0
    properties: tuple[TableFeatureProp, ...] = ()

    def encode(self) -> bytes:
        body = b"".join(p.encode() for p in self.properties)
        return TABLE_FEATURES.pack(TABLE_FEATURES.size + len(body), self.table_id,
                                   fixed_string(self.name, OFP_MAX_TABLE_NAME_LEN),
                                   self.metadata_match, self.metadata_write, self.config,
                                   self.max_entries) + body

    @classmethod
    def decode(cls, r: Reader) -> TableFeatures:
        length = r.peek_u16()
        if length < TABLE_FEATURES.size or length > r.remaining:
            r.fail(f"table features of length {length}, {r.remaining} bytes left")
        w = r.window(length)
        _, table_id, name, metadata_match, metadata_write, config, max_entries = \
            w.unpack(TABLE_FEATURES)
        props = []
        while w.remaining:
            props.append(TableFeatureProp.decode(w))
        return cls(table_id, unpad(name), metadata_match, metadata_write, config, max_entries,
                   tuple(props))


def decode_table_features(r: Reader) -> tuple[TableFeatures, ...]:
    """Every table-features entry left in ``r``."""
    w = r.window(r.remaining, BAD_TF_LEN, "table features")
    tables = []
    while w.remaining:
        tables.append(TableFeatures.decode(w))
    return tuple(tables)
