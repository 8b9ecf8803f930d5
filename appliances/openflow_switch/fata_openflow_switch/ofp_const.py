"""The numbers of OpenFlow 1.3 (OpenFlow Switch Specification 1.3.5, ``openflow.h`` of wire
protocol 0x04), named as the specification names them without their ``OFP..._`` prefix.

Decoded messages keep every number as a plain ``int`` (an unknown flow-mod command is still a
message, which the switch answers with ``OFPFMFC_BAD_COMMAND``); these enums are what code
compares them with and builds messages from, so a number is written once, here.
"""

from __future__ import annotations

import enum

OFP_VERSION = 0x04
"""The wire version of OpenFlow 1.3."""

OFP_HEADER_LEN = 8
OFP_ERROR_DATA_LEN = 64
"""Bytes of an offending request an error carries (the specification says at least 64)."""

OFP_MAX_PORT_NAME_LEN = 16
OFP_MAX_TABLE_NAME_LEN = 32
DESC_STR_LEN = 256
SERIAL_NUM_LEN = 32

OFP_NO_BUFFER = 0xFFFFFFFF
"""``buffer_id`` of a packet-in or packet-out whose packet is carried whole."""

OFP_DEFAULT_PRIORITY = 0x8000
OFP_DEFAULT_MISS_SEND_LEN = 128

OFPTT_MAX = 0xFE
OFPTT_ALL = 0xFF
"""Table numbers: the last real table, and "every table" (flow deletes, table-mod, stats)."""

OFPG_MAX = 0xFFFFFF00
OFPG_ALL = 0xFFFFFFFC
OFPG_ANY = 0xFFFFFFFF

OFPM_MAX = 0xFFFF0000
OFPM_SLOWPATH = 0xFFFFFFFD
OFPM_CONTROLLER = 0xFFFFFFFE
OFPM_ALL = 0xFFFFFFFF

OFPQ_ALL = 0xFFFFFFFF
OFPQ_MIN_RATE_UNCFG = 0xFFFF
OFPQ_MAX_RATE_UNCFG = 0xFFFF

OFPCML_MAX = 0xFFE5
"""The largest ``max_len`` that still asks for buffering (``OFPCML_NO_BUFFER`` is 0xffff)."""
OFPCML_NO_BUFFER = 0xFFFF

OFPVID_PRESENT = 0x1000
OFPVID_NONE = 0x0000

OFPTC_DEPRECATED_MASK = 0x00000003


class MsgType(enum.IntEnum):
    """``ofp_type``: the header's message type."""

    HELLO = 0
    ERROR = 1
    ECHO_REQUEST = 2
    ECHO_REPLY = 3
    EXPERIMENTER = 4
    FEATURES_REQUEST = 5
    FEATURES_REPLY = 6
    GET_CONFIG_REQUEST = 7
    GET_CONFIG_REPLY = 8
    SET_CONFIG = 9
    PACKET_IN = 10
    FLOW_REMOVED = 11
    PORT_STATUS = 12
    PACKET_OUT = 13
    FLOW_MOD = 14
    GROUP_MOD = 15
    PORT_MOD = 16
    TABLE_MOD = 17
    MULTIPART_REQUEST = 18
    MULTIPART_REPLY = 19
    BARRIER_REQUEST = 20
    BARRIER_REPLY = 21
    QUEUE_GET_CONFIG_REQUEST = 22
    QUEUE_GET_CONFIG_REPLY = 23
    ROLE_REQUEST = 24
    ROLE_REPLY = 25
    GET_ASYNC_REQUEST = 26
    GET_ASYNC_REPLY = 27
    SET_ASYNC = 28
    METER_MOD = 29


class HelloElemType(enum.IntEnum):
    VERSIONBITMAP = 1


# --- errors ---------------------------------------------------------------------------------


class ErrorType(enum.IntEnum):
    """``ofp_error_type``."""

    HELLO_FAILED = 0
    BAD_REQUEST = 1
    BAD_ACTION = 2
    BAD_INSTRUCTION = 3
    BAD_MATCH = 4
    FLOW_MOD_FAILED = 5
    GROUP_MOD_FAILED = 6
    PORT_MOD_FAILED = 7
    TABLE_MOD_FAILED = 8
    QUEUE_OP_FAILED = 9
    SWITCH_CONFIG_FAILED = 10
    ROLE_REQUEST_FAILED = 11
    METER_MOD_FAILED = 12
    TABLE_FEATURES_FAILED = 13
    EXPERIMENTER = 0xFFFF


class HelloFailedCode(enum.IntEnum):
    INCOMPATIBLE = 0
    EPERM = 1


class BadRequestCode(enum.IntEnum):
    BAD_VERSION = 0
    BAD_TYPE = 1
    BAD_MULTIPART = 2
    BAD_EXPERIMENTER = 3
    BAD_EXP_TYPE = 4
    EPERM = 5
    BAD_LEN = 6
    BUFFER_EMPTY = 7
    BUFFER_UNKNOWN = 8
    BAD_TABLE_ID = 9
    IS_SLAVE = 10
    BAD_PORT = 11
    BAD_PACKET = 12
    MULTIPART_BUFFER_OVERFLOW = 13


class BadActionCode(enum.IntEnum):
    BAD_TYPE = 0
    BAD_LEN = 1
    BAD_EXPERIMENTER = 2
    BAD_EXP_TYPE = 3
    BAD_OUT_PORT = 4
    BAD_ARGUMENT = 5
    EPERM = 6
    TOO_MANY = 7
    BAD_QUEUE = 8
    BAD_OUT_GROUP = 9
    MATCH_INCONSISTENT = 10
    UNSUPPORTED_ORDER = 11
    BAD_TAG = 12
    BAD_SET_TYPE = 13
    BAD_SET_LEN = 14
    BAD_SET_ARGUMENT = 15


class BadInstructionCode(enum.IntEnum):
    UNKNOWN_INST = 0
    UNSUP_INST = 1
    BAD_TABLE_ID = 2
    UNSUP_METADATA = 3
    UNSUP_METADATA_MASK = 4
    BAD_EXPERIMENTER = 5
    BAD_EXP_TYPE = 6
    BAD_LEN = 7
    EPERM = 8


class BadMatchCode(enum.IntEnum):
    BAD_TYPE = 0
    BAD_LEN = 1
    BAD_TAG = 2
    BAD_DL_ADDR_MASK = 3
    BAD_NW_ADDR_MASK = 4
    BAD_WILDCARDS = 5
    BAD_FIELD = 6
    BAD_VALUE = 7
    BAD_MASK = 8
    BAD_PREREQ = 9
    DUP_FIELD = 10
    EPERM = 11


class FlowModFailedCode(enum.IntEnum):
    UNKNOWN = 0
    TABLE_FULL = 1
    BAD_TABLE_ID = 2
    OVERLAP = 3
    EPERM = 4
    BAD_TIMEOUT = 5
    BAD_COMMAND = 6
    BAD_FLAGS = 7


class GroupModFailedCode(enum.IntEnum):
    GROUP_EXISTS = 0
    INVALID_GROUP = 1
    WEIGHT_UNSUPPORTED = 2
    OUT_OF_GROUPS = 3
    OUT_OF_BUCKETS = 4
    CHAINING_UNSUPPORTED = 5
    WATCH_UNSUPPORTED = 6
    LOOP = 7
    UNKNOWN_GROUP = 8
    CHAINED_GROUP = 9
    BAD_TYPE = 10
    BAD_COMMAND = 11
    BAD_BUCKET = 12
    BAD_WATCH = 13
    EPERM = 14


class PortModFailedCode(enum.IntEnum):
    BAD_PORT = 0
    BAD_HW_ADDR = 1
    BAD_CONFIG = 2
    BAD_ADVERTISE = 3
    EPERM = 4


class TableModFailedCode(enum.IntEnum):
    BAD_TABLE = 0
    BAD_CONFIG = 1
    EPERM = 2


class QueueOpFailedCode(enum.IntEnum):
    BAD_PORT = 0
    BAD_QUEUE = 1
    EPERM = 2


class SwitchConfigFailedCode(enum.IntEnum):
    BAD_FLAGS = 0
    BAD_LEN = 1
    EPERM = 2


class RoleRequestFailedCode(enum.IntEnum):
    STALE = 0
    UNSUP = 1
    BAD_ROLE = 2


class MeterModFailedCode(enum.IntEnum):
    UNKNOWN = 0
    METER_EXISTS = 1
    INVALID_METER = 2
    UNKNOWN_METER = 3
    BAD_COMMAND = 4
    BAD_FLAGS = 5
    BAD_RATE = 6
    BAD_BURST = 7
    BAD_BAND = 8
    BAD_BAND_VALUE = 9
    OUT_OF_METERS = 10
    OUT_OF_BANDS = 11


class TableFeaturesFailedCode(enum.IntEnum):
    BAD_TABLE = 0
    BAD_METADATA = 1
    BAD_TYPE = 2
    BAD_LEN = 3
    BAD_ARGUMENT = 4
    EPERM = 5


ERROR_CODES: dict[int, type[enum.IntEnum]] = {
    ErrorType.HELLO_FAILED: HelloFailedCode,
    ErrorType.BAD_REQUEST: BadRequestCode,
    ErrorType.BAD_ACTION: BadActionCode,
    ErrorType.BAD_INSTRUCTION: BadInstructionCode,
    ErrorType.BAD_MATCH: BadMatchCode,
    ErrorType.FLOW_MOD_FAILED: FlowModFailedCode,
    ErrorType.GROUP_MOD_FAILED: GroupModFailedCode,
    ErrorType.PORT_MOD_FAILED: PortModFailedCode,
    ErrorType.TABLE_MOD_FAILED: TableModFailedCode,
    ErrorType.QUEUE_OP_FAILED: QueueOpFailedCode,
    ErrorType.SWITCH_CONFIG_FAILED: SwitchConfigFailedCode,
    ErrorType.ROLE_REQUEST_FAILED: RoleRequestFailedCode,
    ErrorType.METER_MOD_FAILED: MeterModFailedCode,
    ErrorType.TABLE_FEATURES_FAILED: TableFeaturesFailedCode,
}
"""Each error type's code enum, so an error can be named (``OFPBMC_BAD_PREREQ``) in logs."""


def error_name(err_type: int, code: int) -> str:
    """``"BAD_MATCH/BAD_PREREQ"`` for (4, 9); numbers for what the specification lacks."""
    try:
        type_name = ErrorType(err_type).name
    except ValueError:
        return f"{err_type}/{code}"
    codes = ERROR_CODES.get(err_type)
    if codes is None:
        return f"{type_name}/{code}"
    try:
        return f"{type_name}/{codes(code).name}"
    except ValueError:
        return f"{type_name}/{code}"


# --- ports ----------------------------------------------------------------------------------


class PortNo(enum.IntEnum):
    """``ofp_port_no``: the reserved ports (physical ports are 1 to ``MAX``)."""

    MAX = 0xFFFFFF00
    IN_PORT = 0xFFFFFFF8
    TABLE = 0xFFFFFFF9
    NORMAL = 0xFFFFFFFA
    FLOOD = 0xFFFFFFFB
    ALL = 0xFFFFFFFC
    CONTROLLER = 0xFFFFFFFD
    LOCAL = 0xFFFFFFFE
    ANY = 0xFFFFFFFF


class PortConfig(enum.IntFlag):
    PORT_DOWN = 1 << 0
    NO_RECV = 1 << 2
    NO_FWD = 1 << 5
    NO_PACKET_IN = 1 << 6


class PortState(enum.IntFlag):
    LINK_DOWN = 1 << 0
    BLOCKED = 1 << 1
    LIVE = 1 << 2


class PortFeatures(enum.IntFlag):
    F_10MB_HD = 1 << 0
    F_10MB_FD = 1 << 1
    F_100MB_HD = 1 << 2
    F_100MB_FD = 1 << 3
    F_1GB_HD = 1 << 4
    F_1GB_FD = 1 << 5
    F_10GB_FD = 1 << 6
    F_40GB_FD = 1 << 7
    F_100GB_FD = 1 << 8
    F_1TB_FD = 1 << 9
    OTHER = 1 << 10
    COPPER = 1 << 11
    FIBER = 1 << 12
    AUTONEG = 1 << 13
    PAUSE = 1 << 14
    PAUSE_ASYM = 1 << 15


class PortReason(enum.IntEnum):
    ADD = 0
    DELETE = 1
    MODIFY = 2


# --- switch ---------------------------------------------------------------------------------


class Capabilities(enum.IntFlag):
    FLOW_STATS = 1 << 0
    TABLE_STATS = 1 << 1
    PORT_STATS = 1 << 2
    GROUP_STATS = 1 << 3
    IP_REASM = 1 << 5
    QUEUE_STATS = 1 << 6
    PORT_BLOCKED = 1 << 8


class ConfigFlags(enum.IntFlag):
    FRAG_NORMAL = 0
    FRAG_DROP = 1 << 0
    FRAG_REASM = 1 << 1
    FRAG_MASK = 3


class ControllerRole(enum.IntEnum):
    NOCHANGE = 0
    EQUAL = 1
    MASTER = 2
    SLAVE = 3


class PacketInReason(enum.IntEnum):
    NO_MATCH = 0
    ACTION = 1
    INVALID_TTL = 2


class FlowRemovedReason(enum.IntEnum):
    IDLE_TIMEOUT = 0
    HARD_TIMEOUT = 1
    DELETE = 2
    GROUP_DELETE = 3


# --- flows ----------------------------------------------------------------------------------


class FlowModCommand(enum.IntEnum):
    ADD = 0
    MODIFY = 1
    MODIFY_STRICT = 2
    DELETE = 3
    DELETE_STRICT = 4


class FlowModFlags(enum.IntFlag):
    SEND_FLOW_REM = 1 << 0
    CHECK_OVERLAP = 1 << 1
    RESET_COUNTS = 1 << 2
    NO_PKT_COUNTS = 1 << 3
    NO_BYT_COUNTS = 1 << 4


class MatchType(enum.IntEnum):
    STANDARD = 0  # OpenFlow 1.1's fixed match, deprecated: refused with OFPBMC_BAD_TYPE
    OXM = 1


class OxmClass(enum.IntEnum):
    NXM_0 = 0x0000
    NXM_1 = 0x0001
    OPENFLOW_BASIC = 0x8000
    EXPERIMENTER = 0xFFFF


class OxmField(enum.IntEnum):
    """``oxm_ofb_match_fields``: the fields of the ``OPENFLOW_BASIC`` class."""

    IN_PORT = 0
    IN_PHY_PORT = 1
    METADATA = 2
    ETH_DST = 3
    ETH_SRC = 4
    ETH_TYPE = 5
    VLAN_VID = 6
    VLAN_PCP = 7
    IP_DSCP = 8
    IP_ECN = 9
    IP_PROTO = 10
    IPV4_SRC = 11
    IPV4_DST = 12
    TCP_SRC = 13
    TCP_DST = 14
    UDP_SRC = 15
    UDP_DST = 16
    SCTP_SRC = 17
    SCTP_DST = 18
    ICMPV4_TYPE = 19
    ICMPV4_CODE = 20
    ARP_OP = 21
    ARP_SPA = 22
    ARP_TPA = 23
    ARP_SHA = 24
    ARP_THA = 25
    IPV6_SRC = 26
    IPV6_DST = 27
    IPV6_FLABEL = 28
    ICMPV6_TYPE = 29
    ICMPV6_CODE = 30
    IPV6_ND_TARGET = 31
    IPV6_ND_SLL = 32
    IPV6_ND_TLL = 33
    MPLS_LABEL = 34
    MPLS_TC = 35
    MPLS_BOS = 36
    PBB_ISID = 37
    TUNNEL_ID = 38
    IPV6_EXTHDR = 39


class Ipv6ExthdrFlags(enum.IntFlag):
    NONEXT = 1 << 0
    ESP = 1 << 1
    AUTH = 1 << 2
    DEST = 1 << 3
    FRAG = 1 << 4
    ROUTER = 1 << 5
    HOP = 1 << 6
    UNREP = 1 << 7
    UNSEQ = 1 << 8


class ActionType(enum.IntEnum):
    OUTPUT = 0
    COPY_TTL_OUT = 11
    COPY_TTL_IN = 12
    SET_MPLS_TTL = 15
    DEC_MPLS_TTL = 16
    PUSH_VLAN = 17
    POP_VLAN = 18
    PUSH_MPLS = 19
    POP_MPLS = 20
    SET_QUEUE = 21
    GROUP = 22
    SET_NW_TTL = 23
    DEC_NW_TTL = 24
    SET_FIELD = 25
    PUSH_PBB = 26
    POP_PBB = 27
    EXPERIMENTER = 0xFFFF


class InstructionType(enum.IntEnum):
    GOTO_TABLE = 1
    WRITE_METADATA = 2
    WRITE_ACTIONS = 3
    APPLY_ACTIONS = 4
    CLEAR_ACTIONS = 5
    METER = 6
    EXPERIMENTER = 0xFFFF


# --- groups and meters ----------------------------------------------------------------------


class GroupModCommand(enum.IntEnum):
    ADD = 0
    MODIFY = 1
    DELETE = 2


class GroupType(enum.IntEnum):
    ALL = 0
    SELECT = 1
    INDIRECT = 2
    FF = 3


class GroupCapabilities(enum.IntFlag):
    SELECT_WEIGHT = 1 << 0
    SELECT_LIVENESS = 1 << 1
    CHAINING = 1 << 2
    CHAINING_CHECKS = 1 << 3


class MeterModCommand(enum.IntEnum):
    ADD = 0
    MODIFY = 1
    DELETE = 2


class MeterFlags(enum.IntFlag):
    KBPS = 1 << 0
    PKTPS = 1 << 1
    BURST = 1 << 2
    STATS = 1 << 3


class MeterBandType(enum.IntEnum):
    DROP = 1
    DSCP_REMARK = 2
    EXPERIMENTER = 0xFFFF


class QueueProperty(enum.IntEnum):
    MIN_RATE = 1
    MAX_RATE = 2
    EXPERIMENTER = 0xFFFF


# --- multipart ------------------------------------------------------------------------------


class MultipartType(enum.IntEnum):
    DESC = 0
    FLOW = 1
    AGGREGATE = 2
    TABLE = 3
    PORT_STATS = 4
    QUEUE = 5
    GROUP = 6
    GROUP_DESC = 7
    GROUP_FEATURES = 8
    METER = 9
    METER_CONFIG = 10
    METER_FEATURES = 11
    TABLE_FEATURES = 12
    PORT_DESC = 13
    EXPERIMENTER = 0xFFFF


class MultipartFlags(enum.IntFlag):
    MORE = 1 << 0  # OFPMPF_REQ_MORE and OFPMPF_REPLY_MORE


class TableFeaturePropType(enum.IntEnum):
    INSTRUCTIONS = 0
    INSTRUCTIONS_MISS = 1
    NEXT_TABLES = 2
    NEXT_TABLES_MISS = 3
    WRITE_ACTIONS = 4
    WRITE_ACTIONS_MISS = 5
    APPLY_ACTIONS = 6
    APPLY_ACTIONS_MISS = 7
    MATCH = 8
    WILDCARDS = 10
    WRITE_SETFIELD = 12
    WRITE_SETFIELD_MISS = 13
    APPLY_SETFIELD = 14
    APPLY_SETFIELD_MISS = 15
    EXPERIMENTER = 0xFFFE
    EXPERIMENTER_MISS = 0xFFFF
